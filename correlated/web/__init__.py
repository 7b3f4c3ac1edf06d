"""Browser dashboards: one blueprint, its routes split into modules by page group."""
from flask import Blueprint

bp = Blueprint("dashboard", __name__)

# Modules register their routes, filters and template helpers on bp.
from . import (  # noqa: E402,F401
    accounts, catalog, common, connections, events, formatting, lists, settings, signals, users,
    views,
)
