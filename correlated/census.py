"""census surface (to be built)."""
from flask import Blueprint

bp = Blueprint("census", __name__)
