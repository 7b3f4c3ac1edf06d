"""Run the app under gunicorn from the `correlated serve` command."""
from __future__ import annotations

from gunicorn.app.base import BaseApplication


class _Server(BaseApplication):
    def __init__(self, options: dict):
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        # Each worker builds its own app (and database connections) after the fork.
        from . import create_app

        return create_app()


def run_gunicorn(bind: str, workers: int) -> None:
    _Server({"bind": bind, "workers": workers, "accesslog": "-", "timeout": 120,
             "graceful_timeout": 20}).run()
