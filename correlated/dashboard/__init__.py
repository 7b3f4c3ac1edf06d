"""Browser dashboards: one blueprint, its routes split into modules by page group."""
from flask import Blueprint

bp = Blueprint("dashboard", __name__)

from . import common, connections, views  # noqa: E402,F401  (modules register their routes on bp)
