"""segment surface (to be built)."""
from flask import Blueprint

bp = Blueprint("segment", __name__)
