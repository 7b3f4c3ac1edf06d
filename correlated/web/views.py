"""Sign in, sign out, and the overview page."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user

from ..analytics import charts, rollups
from ..auth import LoginUser, check_login
from ..extensions import db
from .forms import LoginForm
from . import bp
from .common import safe_next, workspace_id


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Email and password; on success back to the page that asked for it."""
    target = safe_next(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(target or url_for("dashboard.index"))
    form = LoginForm()
    if form.validate_on_submit():
        member = check_login(db.session, form.email.data, form.password.data)
        if member is not None:
            login_user(LoginUser(member))
            return redirect(target or url_for("dashboard.index"))
        flash("That email and password do not match a member of any workspace.", "error")
    status = 401 if request.method == "POST" else 200
    return render_template("auth/login.html", form=form, next=target), status


@bp.post("/logout")
def logout():
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("dashboard.login"))


@bp.get("/")
def index():
    """The last 30 days across all accounts, against the 30 before."""
    ws = workspace_id()
    events = rollups.event_days(db.session, ws, days=60)
    totals = rollups.overview_totals(db.session, ws, events)
    top, dropped = rollups.movers(db.session, ws)
    actives = rollups.daily_actives(db.session, ws, days=30)
    return render_template(
        "overview.html", totals=totals, top=top, dropped=dropped,
        change=rollups.change_pct,
        actives_chart=charts.lines(actives, {"accounts": "Active accounts",
                                             "users": "Active users"}),
        events_chart=charts.stacked_bars(rollups.by_day(events, 30)),
    )
