"""webhooks surface (to be built)."""
from flask import Blueprint

bp = Blueprint("webhooks", __name__)
