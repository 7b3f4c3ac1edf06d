"""The dashboard blueprint, on its own so page modules can register on it without importing
the package that imports them."""
from flask import Blueprint

bp = Blueprint("dashboard", __name__)
