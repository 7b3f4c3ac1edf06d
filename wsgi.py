"""gunicorn entry point: `gunicorn wsgi:app`."""
from correlated import create_app

app = create_app()
