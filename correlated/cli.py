"""Operator commands: `correlated serve|worker|db|workspace|keys|demo|refresh|alerts` (the
`correlated` group itself is in the package's __init__, next to the app factory it runs)."""
from __future__ import annotations

import secrets
import sys

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import ScriptInfo, with_appcontext
from flask_migrate import upgrade

from .auth import issue_key, login_problem, revoke_keys
from .extensions import db
from .models import ApiKey
from .workspaces import create_workspace, find_workspace, first_workspace


def init_app(app: Flask) -> None:
    from flask_migrate.cli import db as db_group

    from .alerts.cli import alerts

    for command in (serve, worker, workspace, keys, demo, refresh, alerts):
        app.cli.add_command(command)
    db_group.add_command(export_views)  # `correlated db export-views`, beside Flask-Migrate's


def _workspace_or_fail(name: str):
    ws = find_workspace(db.session, name)
    if ws is None:
        raise click.ClickException(f"no workspace named {name!r}")
    return ws


# --- refresh --------------------------------------------------------------------------------

@click.command()
@with_appcontext
def refresh() -> None:
    """Bring every workspace's dashboard summaries up to date (run it from cron just after
    midnight UTC, so that no one's first page view of the day pays for moving the windows)."""
    import time

    from .models import Workspace
    from .analytics.summaries import ensure_fresh

    for ws_id, name in db.session.execute(sa.select(Workspace.id, Workspace.name)
                                          .order_by(Workspace.id)).all():
        started = time.perf_counter()
        ensure_fresh(db.session, ws_id)
        click.echo(f"{name}: fresh ({(time.perf_counter() - started) * 1000:.0f} ms)")


# --- db export-views -----------------------------------------------------------------------

@click.command("export-views")
@click.option("--workspace", "workspace_name", default=None,
              help="Also create (or re-register) a read-only role that sees this workspace.")
@click.option("--role", default=None,
              help="The role's name [default: correlated_export_<workspace>].")
@click.option("--password", default=None,
              help="Its password [default: generated for a new role, printed once; an existing "
                   "role keeps its own].")
@click.option("--schema", default="correlated_export", show_default=True)
@click.option("--drop", is_flag=True,
              help="Drop the views instead (before a `db upgrade` that changes what they read).")
@with_appcontext
def export_views(workspace_name: str | None, role: str | None, password: str | None,
                 schema: str, drop: bool) -> None:
    """PostgreSQL only: views for Hightouch and Census to read, and a read-only role."""
    import re

    from .protocols import export_views as views

    try:
        with db.engine.begin() as bind:
            if drop:
                views.drop_views(bind, schema)
                click.echo(f"dropped schema {schema}")
                return
            made = views.create_views(bind, schema)
            click.echo(f"schema {schema}: views {', '.join(made)}")
            if workspace_name is None:
                return
            ws = _workspace_or_fail(workspace_name)
            role = role or "correlated_export_" + re.sub(r"[^a-z0-9_]", "_", ws.name.lower())
            secret = views.add_reader(bind, ws, role[:63], password, schema)
    except views.NotPostgres as exc:
        raise click.ClickException(str(exc)) from None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    url = db.engine.url.set(username=role[:63], password=None, drivername="postgresql")
    click.echo(f"role {role[:63]}: reads workspace {ws.name!r} only")
    click.echo(f"  connect: {url.render_as_string(hide_password=False)}")
    click.echo(f"  password: {secret} (shown only this once)" if secret and not password
               else "  password: unchanged" if not password else "  password: as given")


# --- worker ---------------------------------------------------------------------------------

@click.command()
@click.option("--interval", type=float, default=None,
              help="Seconds between polls when idle [CORRELATED_WORKER_INTERVAL, default 2].")
@click.option("--once", is_flag=True, help="Run every job once and exit.")
@with_appcontext
def worker(interval: float | None, once: bool) -> None:
    """Keep summaries and signals current (and run the other background jobs) until stopped."""
    import logging

    from . import worker as background

    logging.basicConfig(level=current_app.config.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if once:
        click.echo(f"did {background.run_once(db.session)} unit(s) of work")
        return
    background.run_forever(current_app._get_current_object(),
                           interval if interval is not None else current_app.config["WORKER_INTERVAL"])


# --- serve ----------------------------------------------------------------------------------

@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
@click.option("--demo", is_flag=True, help="Also load the demo data set into a new workspace.")
@with_appcontext
def serve(host: str, port: int, workers: int, demo: bool) -> None:
    """Upgrade the database schema, set up a first workspace if there is none, and serve."""
    upgrade()  # the migrations directory the app configured Flask-Migrate with
    base_url = current_app.config.get("PUBLIC_URL") or f"http://{host}:{port}"
    if first_workspace(db.session) is None:
        _first_run(base_url, demo)
    else:
        click.echo(f"correlated is serving at {base_url}/")
    db.session.remove()
    db.engine.dispose()  # workers open their own connections
    from .server import background_worker, run_gunicorn

    with background_worker():
        run_gunicorn(f"{host}:{port}", workers, _factory())


def _factory():
    """What builds the app in each gunicorn worker: the factory this command was run with."""
    info = click.get_current_context().find_object(ScriptInfo)
    return info.create_app or info.load_app


def _first_run(base_url: str, demo: bool) -> None:
    email, password = "admin@example.com", secrets.token_urlsafe(12)
    ws = create_workspace(db.session, "demo" if demo else "default", email, password)
    _key, plaintext = issue_key(db.session, ws, "first key")
    db.session.commit()
    if demo:
        from .demo import load_demo

        load_demo(db.session, ws, accounts=60, progress=_progress)
    click.echo("")
    click.echo(f"  Dashboard:  {base_url}/")
    click.echo(f"  Login:      {email}")
    click.echo(f"  Password:   {password}")
    click.echo(f"  API key:    {plaintext}")
    click.echo("  (the password and key are shown only now; keep them)")
    click.echo("")


def _progress(total: int, label: str):
    return click.progressbar(length=total, label=label, file=sys.stderr)


# --- workspace ------------------------------------------------------------------------------

@click.group()
def workspace() -> None:
    """Manage workspaces."""


@workspace.command("create")
@click.argument("name")
@click.option("--admin-email", required=True)
@click.option("--admin-password", required=True)
@with_appcontext
def workspace_create(name: str, admin_email: str, admin_password: str) -> None:
    """Create a workspace with an admin login."""
    if find_workspace(db.session, name):
        raise click.ClickException(f"workspace {name!r} already exists")
    problem = login_problem(admin_email, admin_password)
    if problem:
        raise click.ClickException(f"{problem} (as in the dashboard's Members page)")
    create_workspace(db.session, name, admin_email, admin_password)
    db.session.commit()
    click.echo(f"created workspace {name!r} with admin {admin_email}")


# --- keys -----------------------------------------------------------------------------------

@click.group()
def keys() -> None:
    """Issue, list and revoke API keys."""


@keys.command("create")
@click.option("--workspace", "workspace_name", required=True)
@click.option("--name", default="cli", show_default=True, help="A label for the key.")
@with_appcontext
def keys_create(workspace_name: str, name: str) -> None:
    """Create a key; it is printed once, alone on the last line."""
    ws = _workspace_or_fail(workspace_name)
    key, plaintext = issue_key(db.session, ws, name)
    db.session.commit()
    click.echo(f"created key {key.prefix}… ({name}) for workspace {ws.name!r}; it is shown only once:")
    click.echo(plaintext)


@keys.command("list")
@click.option("--workspace", "workspace_name", required=True)
@with_appcontext
def keys_list(workspace_name: str) -> None:
    """List a workspace's keys (prefix, name, created, last used, revoked)."""
    ws = _workspace_or_fail(workspace_name)
    rows = db.session.scalars(sa.select(ApiKey).where(ApiKey.workspace_id == ws.id)
                              .order_by(ApiKey.created_at))
    click.echo(f"{'PREFIX':<14} {'NAME':<20} {'CREATED':<20} {'LAST USED':<20} STATUS")
    for k in rows:
        click.echo(f"{k.prefix:<14} {k.name[:20]:<20} {_when(k.created_at):<20} "
                   f"{_when(k.last_used_at):<20} {'revoked' if k.revoked_at else 'active'}")


@keys.command("revoke")
@click.argument("prefix")
@with_appcontext
def keys_revoke(prefix: str) -> None:
    """Revoke the key whose display prefix (e.g. cor_AbCdEfGh) is PREFIX."""
    if len(prefix) < 8:
        raise click.ClickException("give at least 8 characters of the key prefix")
    count = revoke_keys(db.session, prefix)
    db.session.commit()
    if count == 0:
        raise click.ClickException(f"no active key starts with {prefix!r}")
    click.echo(f"revoked {count} key(s)")


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


# --- demo -----------------------------------------------------------------------------------

@click.group()
def demo() -> None:
    """Synthetic B2B data for trying correlated."""


@demo.command("load")
@click.option("--workspace", "workspace_name", required=True)
@click.option("--accounts", default=60, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--days", default=120, show_default=True, type=click.IntRange(7, 730))
@click.option("--seed", default=7, show_default=True, type=int)
@with_appcontext
def demo_load(workspace_name: str, accounts: int, days: int, seed: int) -> None:
    """Load accounts, users and months of events through the ingestion engine."""
    from .demo import load_demo

    ws = _workspace_or_fail(workspace_name)
    counts = load_demo(db.session, ws, accounts=accounts, days=days, seed=seed, progress=_progress)
    click.echo(f"loaded {counts['accounts']} accounts, {counts['users']} users, "
               f"{counts['events']} events into {ws.name!r}")
