"""Fixtures for the alert tests: receivers on loopback, and the app allowed to reach them."""
from __future__ import annotations

import json

import pytest

from .receivers import HttpReceiver, SmtpReceiver, slack_shape_problem


@pytest.fixture
def allow_private(app):
    """Loopback receivers are private addresses: let destinations reach them."""
    app.config["ALLOW_PRIVATE_DESTINATIONS"] = True
    app.config["PUBLIC_URL"] = "https://correlated.example"
    return app


@pytest.fixture
def receiver():
    found = HttpReceiver().start()
    yield found
    found.stop()


@pytest.fixture
def slack_receiver():
    found = HttpReceiver(check=lambda r: slack_shape_problem(json.loads(r.body))).start()
    yield found
    found.stop()


@pytest.fixture
def smtp(app):
    found = SmtpReceiver()
    found.controller.start()
    app.config["SMTP_URL"] = found.url
    yield found
    found.controller.stop()
