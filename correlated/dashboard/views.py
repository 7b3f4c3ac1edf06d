"""Dashboard pages (login, overview, accounts, users, events, fields, keys, members)."""
from flask import redirect

from . import bp


@bp.route("/login")
def login():
    return "sign in (to be built)"


@bp.route("/")
def index():
    return redirect("/login")
