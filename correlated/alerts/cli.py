"""`correlated alerts deliver`: send the outbox, as its own process (or once, for cron)."""
from __future__ import annotations

import time

import click
from flask.cli import with_appcontext
from sqlalchemy.exc import OperationalError

from ..extensions import db
from .outbox import deliver_due


@click.group()
def alerts() -> None:
    """Alert deliveries (Slack, webhooks, email)."""


@alerts.command("deliver")
@click.option("--once", is_flag=True, help="Send what is due now, then exit.")
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(0.05, 60),
              help="Seconds to wait when nothing is due.")
@with_appcontext
def deliver(once: bool, interval: float) -> None:
    """Send due deliveries and their retries; several of these may run side by side."""
    while True:
        try:
            sent = deliver_due(db.session)
        except OperationalError as exc:  # the database went away: keep the process, try again
            db.session.rollback()
            click.echo(f"database unavailable: {exc.orig}", err=True)
            sent = 0
        if once:
            click.echo(f"attempted {sent} deliveries")
            return
        if not sent:
            time.sleep(interval)
