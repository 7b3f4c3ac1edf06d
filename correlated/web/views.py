"""Sign in (choosing the workspace when a login opens several), sign out, change the password,
and the overview page."""
from __future__ import annotations

import time

import sqlalchemy as sa
from flask import flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from werkzeug.security import check_password_hash

from ..alerts.outbox import failed_count
from ..analytics import charts, rollups
from ..auth import LoginUser, end_sessions, matching_members, set_password
from ..extensions import db
from ..models import Member, Workspace
from .forms import LoginForm, PasswordForm, PostForm
from .blueprint import bp
from .common import safe_next, workspace_id


CHOICE_SECONDS = 300  # how long a checked password may wait for its workspace to be picked


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Email and password; on success back to the page that asked for it."""
    target = safe_next(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(target or url_for("dashboard.index"))
    form = LoginForm()
    if form.validate_on_submit():
        members = matching_members(db.session, form.email.data, form.password.data)
        if len(members) == 1:
            return _sign_in(members[0], target)
        if members:  # the same email and password in several workspaces: the person picks
            session["login_choices"] = {"at": time.time(), "members": [
                [m.workspace_id, m.email] for m in members]}
            return redirect(url_for("dashboard.choose_workspace", next=target))
        flash("That email and password do not match a member of any workspace.", "error")
    status = 401 if request.method == "POST" else 200
    return render_template("auth/login.html", form=form, next=target), status


def _sign_in(member: Member, target: str | None):
    if not member.session_token:  # a member from before session tokens
        end_sessions(member)
        db.session.commit()
    session.pop("login_choices", None)
    login_user(LoginUser(member))
    return redirect(target or url_for("dashboard.index"))


def _login_choices() -> list[tuple[int, str]]:
    """The workspaces a password was checked for in this browser, within CHOICE_SECONDS."""
    pending = session.get("login_choices") or {}
    if time.time() - pending.get("at", 0) > CHOICE_SECONDS:
        return []
    return [(int(ws), email) for ws, email in pending.get("members", [])]


@bp.route("/login/workspace", methods=["GET", "POST"])
def choose_workspace():
    """After a password that opens several workspaces: which one to sign in to."""
    target = safe_next(request.args.get("next"))
    choices = _login_choices()
    if not choices:
        flash("Sign in again to choose a workspace.", "info")
        return redirect(url_for("dashboard.login", next=target))
    form = PostForm()
    if form.validate_on_submit():
        picked = request.form.get("workspace_id", "")
        member = next((db.session.get(Member, (ws, email)) for ws, email in choices
                       if str(ws) == picked), None)
        if member is not None:
            return _sign_in(member, target)
        flash("Choose one of the workspaces below.", "error")
    names = dict(db.session.execute(sa.select(Workspace.id, Workspace.name).where(
        Workspace.id.in_([ws for ws, _email in choices]))).all())
    return render_template("auth/workspace.html", form=form, next=target,
                           workspaces=[(ws, names.get(ws, "")) for ws, _email in choices])


@bp.post("/logout")
def logout():
    """Sign out: the session cookie (and any copy of it) stops working on the server too."""
    if current_user.is_authenticated:
        end_sessions(current_user.member)
        db.session.commit()
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("dashboard.login"))


@bp.route("/settings/password", methods=["GET", "POST"])
def change_password():
    """A new password, given the current one; every other session of the member ends."""
    form = PasswordForm()
    member = current_user.member
    if form.validate_on_submit():
        if not check_password_hash(member.password_hash, form.current.data):
            form.current.errors.append("That is not your current password.")
        else:
            set_password(member, form.password.data)
            db.session.commit()
            login_user(LoginUser(member))  # this session carries the new token
            flash("Your password is changed; other sessions are signed out.", "success")
            return redirect(url_for("dashboard.change_password"))
    status = 400 if request.method == "POST" else 200
    return render_template("settings/password.html", form=form), status


@bp.get("/")
def index():
    """The last 30 days across all accounts, against the 30 before."""
    ws = workspace_id()
    events = rollups.event_days(db.session, ws, days=60)
    totals = rollups.overview_totals(db.session, ws, events)
    drops_by = request.args.get("drops", "events")
    drops_by = drops_by if drops_by in rollups.DROPS_BY else "events"
    top, dropped = rollups.movers(db.session, ws, drops_by=drops_by)
    actives = rollups.daily_actives(db.session, ws, days=30)
    return render_template(
        "overview.html", totals=totals, top=top, dropped=dropped, drops_by=drops_by,
        actives_chart=charts.small_multiples(actives, {"accounts": "Active accounts",
                                                       "users": "Active users"}),
        events_chart=charts.stacked_bars(rollups.by_day(events, 30)),
        failed_deliveries=failed_count(db.session, ws),
    )
