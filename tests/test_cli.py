"""Operator commands through click's runner, and `correlated serve` as a real process."""
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest
import requests
import sqlalchemy as sa

from correlated.auth import verify_key
from correlated.ingest.engine import ingest
from correlated.models import (Account, Event, Field, Member, StaleKey, SummaryState, User,
                               UserMetrics, Workspace)

from .servers import free_port as _free_port, wait_for


def test_workspace_create_and_keys_lifecycle(db, runner):
    result = runner.invoke(args=["workspace", "create", "initech", "--admin-email",
                                 "Boss@Initech.example", "--admin-password", "tps-reports"])
    assert result.exit_code == 0, result.output
    member = db.session.scalars(sa.select(Member)).one()
    assert member.email == "boss@initech.example" and member.role == "admin"

    result = runner.invoke(args=["keys", "create", "--workspace", "initech", "--name", "hightouch"])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert re.fullmatch(r"cor_[A-Za-z0-9_-]{43}", key)
    assert verify_key(db.session, key) is not None

    listing = runner.invoke(args=["keys", "list", "--workspace", "initech"])
    assert key[:12] in listing.output and "hightouch" in listing.output and "active" in listing.output
    assert key not in listing.output

    result = runner.invoke(args=["keys", "revoke", key[:12]])
    assert result.exit_code == 0 and "revoked 1 key" in result.output
    db.session.expire_all()
    assert verify_key(db.session, key) is None
    assert "revoked" in runner.invoke(args=["keys", "list", "--workspace", "initech"]).output


def test_cli_errors_are_clear(runner, tenant):
    result = runner.invoke(args=["keys", "create", "--workspace", "nope"])
    assert result.exit_code != 0 and "no workspace named 'nope'" in result.output
    result = runner.invoke(args=["workspace", "create", "acme", "--admin-email", "a@b.c",
                                 "--admin-password", "x"])
    assert result.exit_code != 0 and "already exists" in result.output
    result = runner.invoke(args=["keys", "revoke", "cor_zzzzzzzz"])
    assert result.exit_code != 0 and "no active key" in result.output


@pytest.mark.parametrize("email, password, message", [
    ("boss@initech.example", "", "at least 10 characters"),
    ("boss@initech.example", "short", "at least 10 characters"),
    ("boss", "a long enough password", "an email address"),
    ("boss@initech", "a long enough password", "an email address"),
])
def test_workspace_create_holds_logins_to_the_dashboards_rules(db, runner, email, password,
                                                               message):
    result = runner.invoke(args=["workspace", "create", "initech", "--admin-email", email,
                                 "--admin-password", password])
    assert result.exit_code != 0 and message in result.output, result.output
    assert db.session.scalars(sa.select(Workspace)).all() == []


def test_demo_load_writes_through_the_engine(db, runner, tenant):
    result = runner.invoke(args=["demo", "load", "--workspace", "acme", "--accounts", "4",
                                 "--days", "14"])
    assert result.exit_code == 0, result.output
    counts = [db.session.scalar(sa.select(sa.func.count()).select_from(m))
              for m in (Account, User, Event)]
    assert counts[0] == 4 and counts[1] >= 8 and counts[2] > 50
    assert f"loaded 4 accounts, {counts[1]} users, {counts[2]} events" in result.output
    plans = set(db.session.scalars(sa.select(Account.traits["plan"].as_string())))
    assert plans <= {"free", "starter", "pro", "enterprise"}
    custom = db.session.scalars(sa.select(Field.key).where(Field.object == "account",
                                                           Field.is_default.is_(False))).all()
    assert custom == []  # the generator's own bookkeeping never becomes a dimension
    again = runner.invoke(args=["demo", "load", "--workspace", "acme", "--accounts", "4",
                                "--days", "14"])
    assert again.exit_code == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Event)) == counts[2]


def test_serve_sets_up_a_first_workspace_and_serves(database_url, tmp_path):
    """The README's first command, minus the install: a key printed that authenticates."""
    port = _free_port()
    env = {**os.environ, "CORRELATED_DATABASE_URL": database_url,
           "CORRELATED_SECRET_KEY": "serve-test"}
    process = subprocess.Popen(
        [sys.executable, "-m", "correlated", "serve", "--port", str(port), "--workers", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    try:
        output = _read_until(process, "API key:")
        key = re.search(r"API key:\s+(cor_\S+)", output).group(1)
        assert re.search(r"Login:\s+admin@example.com", output)
        assert f"http://127.0.0.1:{port}/" in output
        base = f"http://127.0.0.1:{port}"
        assert wait_for(base + "/healthz")
        assert requests.get(base + "/healthz", timeout=5).json() == {"status": "ok"}
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)
        process.stdout.close()
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(Workspace)) == 1
    engine.dispose()
    assert key.startswith("cor_")


def _read_until(process, marker, timeout=60):
    lines, deadline = [], time.time() + timeout
    while time.time() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        lines.append(line)
        if marker in line:
            return "".join(lines)
    raise AssertionError("serve did not print %r:\n%s" % (marker, "".join(lines)))


def test_refresh_brings_summaries_up_to_date(db, runner, workspace):
    ingest(db.session, workspace, "event", "insert", [
        {"event": "sign_in", "user_id": "u1", "account_id": "a1",
         "timestamp": datetime.now(timezone.utc).isoformat()}])
    ws_id, name = workspace.id, workspace.name
    assert db.session.scalar(sa.select(sa.func.count()).select_from(StaleKey)) == 3
    result = runner.invoke(args=["refresh"])
    assert result.exit_code == 0, result.output
    assert f"{name}: fresh" in result.output
    db.session.remove()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(StaleKey)) == 0
    assert db.session.scalar(sa.select(SummaryState.as_of).where(
        SummaryState.workspace_id == ws_id)) == datetime.now(timezone.utc).date()
    assert db.session.scalar(sa.select(UserMetrics.events_30d).where(
        UserMetrics.user_id == "u1")) == 1
