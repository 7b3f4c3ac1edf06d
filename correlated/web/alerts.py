"""Settings -> Destinations (create, send a test, rotate the secret, delete; admins change
anything) and the deliveries list with each attempt, where a failed one can be re-sent."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from ..alerts import destinations, outbox
from ..alerts.models import STATUSES
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
