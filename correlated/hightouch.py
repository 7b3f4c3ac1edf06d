"""hightouch surface (to be built)."""
from flask import Blueprint

bp = Blueprint("hightouch", __name__)
