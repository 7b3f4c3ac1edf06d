"""correlated: account analytics destination for reverse-ETL syncs."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask.cli import FlaskGroup

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent
MIGRATIONS = PACKAGE / "migrations"


def shipped(folder: str) -> Path:
    """templates/ or static/: inside the package when installed from a wheel (setup.cfg maps
    them there), at the top of the checkout otherwise."""
    installed = PACKAGE / folder
    return installed if installed.is_dir() else ROOT / folder


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: configuration, extensions, blueprints, error handlers, CLI."""
    app = Flask(
        __name__,
        template_folder=str(shipped("templates")),
        static_folder=str(shipped("static")),
        instance_relative_config=True,
    )
    configure(app, config)
    register_observability(app)
    register_extensions(app)
    register_blueprints(app)
    register_rate_limits(app)
    register_error_handlers(app)
    register_security_headers(app)
    register_cli(app)
    return app


def configure(app: Flask, overrides: dict[str, Any] | None) -> None:
    from . import config

    app.config.update(config.load(app.instance_path))
    app.config.update(overrides or {})
    from .ingest import catalog  # the engine takes no Flask config: its one server setting

    catalog.MAX_CUSTOM_FIELDS = app.config["MAX_CUSTOM_FIELDS"]


def register_extensions(app: Flask) -> None:
    from . import database
    from .auth import init_login
    from .alerts import models as _alert_tables  # noqa: F401  (feature tables on db.Model)
    from .extensions import csrf, db, migrate
    from .scores import models as _score_tables  # noqa: F401
    from .signals import models as _signal_tables  # noqa: F401

    db.init_app(app)
    database.tune_engine(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS))
    csrf.init_app(app)
    init_login(app)


def register_blueprints(app: Flask) -> None:
    from . import health, web
    from .alerts import api as alerts_api
    from .extensions import csrf
    from .protocols import census, connections_api, hightouch, rest, segment, webhooks

    for module in (rest, hightouch, census, webhooks, segment, connections_api, alerts_api):
        csrf.exempt(module.bp)  # machine surfaces authenticate with keys, not cookies
        app.register_blueprint(module.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(web.bp)
    register_features(app)


def register_features(app: Flask) -> None:
    """What acts on the data: signals and scores (their API, pages and worker jobs), and alerts
    on the signals' transitions."""
    from .alerts import openapi as alerts_openapi, wiring
    from .protocols import schemas
    from .analytics import summaries
    from .signals import api as signals_api, pending

    from .scores import api as scores_api, register as register_scores

    signals_api.init_app(app)
    if pending.keep not in summaries.REFRESH_HOOKS:  # incremental evaluation's changed keys
        summaries.REFRESH_HOOKS.append(pending.keep)
    scores_api.init_app(app)
    register_scores()
    wiring.register()
    if alerts_openapi.add_paths not in schemas.EXTRA_PATHS:  # the alert routes, documented
        schemas.EXTRA_PATHS.append(alerts_openapi.add_paths)


def register_observability(app: Flask) -> None:
    from . import observability

    observability.init_app(app)


def register_rate_limits(app: Flask) -> None:
    from . import ratelimit

    ratelimit.init_app(app)


def register_error_handlers(app: Flask) -> None:
    from . import errors

    errors.init_app(app)


def register_security_headers(app: Flask) -> None:
    from . import security

    security.init_app(app)


def register_cli(app: Flask) -> None:
    from . import cli

    cli.init_app(app)


@click.group(cls=FlaskGroup, create_app=create_app, add_version_option=False,
             help="correlated: account analytics for reverse-ETL syncs.")
def main() -> None:
    """The `correlated` command; its subcommands are in cli.py."""
