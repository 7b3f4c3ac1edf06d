"""Dashboard pages (to be built)."""
from flask import Blueprint

bp = Blueprint("dashboard", __name__)


@bp.route("/login")
def login():
    return "login"
