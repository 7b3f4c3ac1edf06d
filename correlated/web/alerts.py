"""Settings -> Destinations (create, send a test, rotate the secret, delete; admins change
anything), the deliveries list with each attempt, where a failed one can be re-sent, and the
"Alerts" section of each signal's page (its rules, recent deliveries, adding a rule)."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from ..alerts import destinations, outbox, rules
from ..alerts.models import RULE_ON, STATUSES, Delivery
from ..alerts.settings import current
from ..extensions import db
from .blueprint import bp
from .common import require_admin, workspace_id
from .forms import PostForm

KIND_CHOICES = [SelectChoice("webhook", "Webhook (signed, Standard Webhooks)"),
                SelectChoice("slack", "Slack incoming webhook"), SelectChoice("email", "Email")]


class DestinationForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired("Give the destination a name."),
                                           Length(max=120)])
    kind = SelectField("Kind", choices=KIND_CHOICES, default="webhook")
    target = StringField("URL or email address", validators=[
        DataRequired("Enter the URL (or the address, for email)."), Length(max=2048)])


def _render(form: DestinationForm, new_secret: tuple[str, str] | None = None, status: int = 200):
    ws = workspace_id()
    found = [destinations.to_dict(d) for d in destinations.list_destinations(db.session, ws)]
    page = render_template("settings/destinations.html", destinations=found, form=form,
                           post_form=PostForm(), new_secret=new_secret,
                           failed=outbox.failed_count(db.session, ws))
    return page, status, {"Cache-Control": "no-store"} if new_secret else {}


def _destination_or_404(destination_id: str):
    found = destinations.find_destination(db.session, workspace_id(), destination_id)
    if found is None:
        abort(404, "No such destination in this workspace.")
    return found


@bp.get("/settings/destinations")
def destinations_page():
    return _render(DestinationForm())


@bp.post("/settings/destinations")
def create_destination():
    """Create; a webhook's signing secret is shown in this response only."""
    require_admin()
    form = DestinationForm()
    if form.validate_on_submit():
        try:
            made = destinations.create_destination(db.session, workspace_id(), form.name.data,
                                                   form.kind.data, form.target.data, current())
        except destinations.Invalid as exc:
            form.target.errors = list(form.target.errors) + list(exc.errors.values())
        else:
            db.session.commit()
            if made.secret:
                return _render(DestinationForm(formdata=None), (made.name, made.secret), 201)
            flash(f"“{made.name}” is ready: send it a test.", "success")
            return redirect(url_for("dashboard.destinations_page"))
    return _render(form, status=400)


@bp.post("/settings/destinations/<destination_id>/test")
def test_destination(destination_id: str):
    require_admin()
    delivery = outbox.send_test(db.session, _destination_or_404(destination_id))
    [(_d, attempts)] = outbox.with_attempts(db.session, workspace_id(), [delivery])
    last = attempts[-1] if attempts else None
    if delivery.status == "delivered":
        flash("Test message delivered.", "success")
    else:
        flash(f"The test failed: {last.error if last else 'not sent'}.", "error")
    return redirect(url_for("dashboard.destinations_page"))


@bp.post("/settings/destinations/<destination_id>/rotate")
def rotate_destination_secret(destination_id: str):
    """A new secret, shown once; the old one keeps signing for 24 hours."""
    require_admin()
    destination = _destination_or_404(destination_id)
    if destination.kind != "webhook":
        abort(400, "Only webhook destinations have a signing secret.")
    secret = destinations.rotate_secret(destination)
    db.session.commit()
    return _render(DestinationForm(formdata=None), (destination.name, secret), 201)


@bp.post("/settings/destinations/<destination_id>/delete")
def delete_destination(destination_id: str):
    require_admin()
    destination = _destination_or_404(destination_id)
    db.session.delete(destination)
    db.session.commit()
    flash(f"“{destination.name}” is deleted, with its alert rules and deliveries.", "success")
    return redirect(url_for("dashboard.destinations_page"))


# --- deliveries -----------------------------------------------------------------------------

@bp.get("/deliveries")
def deliveries():
    ws = workspace_id()
    status = request.args.get("status") if request.args.get("status") in STATUSES else None
    names = {d.id: d.name for d in destinations.list_destinations(db.session, ws)}
    found = outbox.list_deliveries(db.session, ws, status=status, limit=100)
    return render_template("settings/deliveries.html", deliveries=found, names=names,
                           status=status, statuses=STATUSES, post_form=PostForm())


@bp.post("/deliveries/<delivery_id>/resend")
def resend_delivery(delivery_id: str):
    require_admin()
    try:
        found = outbox.resend(db.session, workspace_id(), delivery_id)
    except destinations.Invalid as exc:
        flash(next(iter(exc.errors.values())), "error")
        return redirect(url_for("dashboard.deliveries"))
    if found is None:
        abort(404, "No such delivery in this workspace.")
    db.session.commit()
    flash("Queued again: the worker sends it within seconds, with the same webhook-id.", "success")
    return redirect(url_for("dashboard.deliveries"))


# --- a signal's alerts ----------------------------------------------------------------------

ON_CHOICES = [SelectChoice("enter", "enters"), SelectChoice("exit", "exits"),
              SelectChoice("both", "enters or exits")]


class RuleForm(FlaskForm):
    destination_id = SelectField("Send to", validate_choice=False)
    on = SelectField("When a member", choices=ON_CHOICES, default="enter")
    cooldown_days = IntegerField("At most one alert per member every (days)", default=1,
                                 validators=[NumberRange(0, 365)])
    digest_threshold = IntegerField("One digest instead when more than", default=10,
                                    validators=[NumberRange(1, 10_000)])
    owner_dimension = StringField("Owner's email in the dimension (optional)",
                                  validators=[Optional(), Length(max=128)])


def rule_form(ws: int) -> RuleForm:
    form = RuleForm()
    form.destination_id.choices = [SelectChoice(d.id, f"{d.name} ({d.kind})")
                                   for d in destinations.list_destinations(db.session, ws)]
    return form


@bp.app_template_global("signal_alerts")
def signal_alerts(signal_id: str) -> dict[str, Any]:
    """For a signal's page: its rules with their destinations, the latest deliveries, the form."""
    ws = workspace_id()
    names = {d.id: d.name for d in destinations.list_destinations(db.session, ws)}
    found = list(db.session.scalars(
        sa.select(Delivery).where(Delivery.workspace_id == ws, Delivery.signal_id == signal_id)
        .order_by(Delivery.created_at.desc(), Delivery.id.desc()).limit(20)))
    return {"rules": rules.list_rules(db.session, ws, signal_id), "names": names,
            "deliveries": outbox.with_attempts(db.session, ws, found), "form": rule_form(ws),
            "on": dict(zip(RULE_ON, ("enters", "exits", "enters or exits")))}


@bp.post("/signals/<signal_id>/alerts")
def create_signal_alert(signal_id: str):
    """An alert rule for this signal; a bad choice comes back as a message on the page."""
    require_admin()
    from .signals import _signal

    signal = _signal(signal_id)
    form = rule_form(signal.workspace_id)
    back = redirect(url_for("dashboard.signal", signal_id=signal.id) + "#alerts")
    if not form.validate_on_submit():
        problems = [f"{form[name].label.text}: {errors[0]}" for name, errors in form.errors.items()]
        flash("The rule was not added. " + " ".join(problems), "error")
        return back
    body = {"signal_id": signal.id, "destination_id": form.destination_id.data,
            "on": form.on.data, "cooldown_days": form.cooldown_days.data,
            "digest_threshold": form.digest_threshold.data,
            "owner_dimension": (form.owner_dimension.data or "").strip() or None}
    try:
        rules.create_rule(db.session, signal.workspace_id, body)
    except destinations.Invalid as exc:
        db.session.rollback()
        flash("The rule was not added: " + "; ".join(f"{k}: {v}" for k, v in exc.errors.items()),
              "error")
        return back
    db.session.commit()
    flash(f"Alerts of “{signal.name}” now go to “{destinations_name(form)}”.", "success")
    return back


def destinations_name(form: RuleForm) -> str:
    return next((c.label.rsplit(" (", 1)[0] for c in form.destination_id.choices
                 if c.value == form.destination_id.data), form.destination_id.data)


@bp.post("/signals/<signal_id>/alerts/<rule_id>/delete")
def delete_signal_alert(signal_id: str, rule_id: str):
    require_admin()
    rule = rules.find_rule(db.session, workspace_id(), rule_id)
    if rule is None or rule.signal_id != signal_id:
        abort(404, "No such alert rule on this signal.")
    db.session.delete(rule)
    db.session.commit()
    flash("The alert rule is deleted (deliveries already sent stay listed).", "success")
    return redirect(url_for("dashboard.signal", signal_id=signal_id) + "#alerts")
