"""Reads don't commit in the middle of a page: the summaries are refreshed once per request,
before the page reads, in a unit of work of their own; the read functions only read."""
from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import pytest
import sqlalchemy as sa

from correlated.analytics import listing, rollups, summaries
from correlated.ingest.engine import ingest
from correlated.models import Account, StaleKey

from .test_dashboard import PAGES, ago, login, seed

SUMMARY_TABLES = re.compile(r"\b(account_metrics|user_metrics|daily_summary|daily_events)\b")


@dataclass
class Traffic:
    statements: list[str] = field(default_factory=list)
    commits: int = 0

    @property
    def queries(self) -> list[str]:
        """Statements but SQLite's explicit BEGIN (database.py)."""
        return [s for s in self.statements if not s.startswith("BEGIN")]

    @property
    def probes(self) -> int:
        """Freshness lookups: the one statement that reads the stale marks."""
        return sum(1 for s in self.queries if s.startswith("SELECT") and "stale_keys" in s)

    @property
    def writes(self) -> list[str]:
        return [s for s in self.queries if re.match(r"\s*(INSERT|UPDATE|DELETE)", s)]


@contextmanager
def traffic(engine: sa.Engine) -> Iterator[Traffic]:
    """Every statement and commit on `engine`'s connections while the block runs."""
    seen = Traffic()

    def on_execute(_conn, _cursor, statement, *_args) -> None:
        seen.statements.append(statement)

    def on_commit(_conn) -> None:
        seen.commits += 1

    sa.event.listen(engine, "before_cursor_execute", on_execute)
    sa.event.listen(engine, "commit", on_commit)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", on_execute)
        sa.event.remove(engine, "commit", on_commit)


@pytest.fixture(autouse=True)
def fresh_g_per_request(fresh_g):
    """Each request its own `g` (so it loads its member), as under a server."""


@pytest.fixture
def seeded(db, tenant, client):
    seed(db, tenant.workspace)
    assert login(client, tenant.admin_email, tenant.admin_password).status_code == 302
    return client


def test_overview_probes_once_and_commits_nothing_once_fresh(db, seeded):
    with traffic(db.engine) as first:
        assert seeded.get("/").status_code == 200
    with traffic(db.engine) as again:
        assert seeded.get("/").status_code == 200
    print(f"\noverview after ingest: {len(first.queries)} statements, {first.commits} commits;"
          f" fresh: {len(again.queries)} statements, {again.commits} commits")
    # After an ingest: one probe, then one refresh in a write transaction of its own.
    assert first.probes == 1 and first.commits == 1
    assert again.probes == 1 and again.commits == 0 and again.writes == []


def stale_marks(db) -> int:
    with db.engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(StaleKey))


@pytest.mark.parametrize("path", PAGES + ["/accounts?format=csv", "/events?name=sign_in"])
def test_every_page_refreshes_once_before_it_reads_the_summaries(db, tenant, seeded, path):
    ingest(db.session, tenant.workspace, "event", "insert",
           [{"event": "sign_in", "user_id": "u1", "timestamp": ago(0, 9)}])
    assert stale_marks(db) > 0
    with traffic(db.engine) as seen:
        assert seeded.get(path).status_code == 200
    reads = [i for i, s in enumerate(seen.queries) if SUMMARY_TABLES.search(s)]
    if not reads:  # a page without metrics leaves the refresh to the next one that has some
        assert seen.probes == 0 and seen.commits == 0
        return
    probe = next(i for i, s in enumerate(seen.queries) if "stale_keys" in s)
    assert seen.probes == 1 and probe < reads[0]
    assert stale_marks(db) == 0 and seen.commits == 1  # the refresh, and only it


def test_read_functions_only_read(db, tenant, seeded):
    """With marks waiting, the read functions neither refresh, nor write, nor commit."""
    ws = tenant.id
    ingest(db.session, tenant.workspace, "event", "insert",
           [{"event": "sign_in", "user_id": "u2", "timestamp": ago(0, 9)}])
    marks = stale_marks(db)
    with traffic(db.engine) as seen:
        events = rollups.event_days(db.session, ws, days=60)
        rollups.overview_totals(db.session, ws, events)
        rollups.movers(db.session, ws)
        rollups.daily_actives(db.session, ws)
        rollups.account_metrics(db.session, ws)
        rollups.user_metrics(db.session, ws, ["u1", "u2"])
        for kind in (listing.ACCOUNTS, listing.USERS):
            listing.list_page(db.session, kind, ws, listing.ListSpec(), {})
            list(listing.all_rows(db.session, kind, ws, listing.ListSpec(), {}))
        listing.account_users(db.session, ws, "acme-1")
    assert seen.probes == 0 and seen.writes == [] and seen.commits == 0
    assert stale_marks(db) == marks


def test_a_refresh_neither_commits_nor_drops_pending_work(db, tenant):
    ingest(db.session, tenant.workspace, "account", "upsert", [{"account_id": "a", "name": "A"}])
    db.session.get(Account, (tenant.id, "a")).name = "pending"
    with pytest.raises(RuntimeError, match="unit of work of its own"):
        summaries.ensure_fresh(db.session, tenant.id)
    assert db.session.get(Account, (tenant.id, "a")).name == "pending"  # still pending
    with db.engine.connect() as conn:
        assert conn.scalar(sa.select(Account.name)) == "A"  # and not committed
    db.session.rollback()
    assert summaries.ensure_fresh(db.session, tenant.id) is True
    assert summaries.ensure_fresh(db.session, tenant.id) is False


def test_rest_account_read_refreshes_first_then_commits_nothing(db, tenant, client):
    seed(db, tenant.workspace)
    url = "/api/v1/accounts/acme-1"
    with traffic(db.engine) as first:
        response = client.get(url, headers=tenant.headers)
    assert response.status_code == 200 and response.json["metrics"]["events_30d"] == 5
    # The key's once-a-minute mark and the refresh: two units of work of their own.
    assert first.probes == 1 and first.commits == 2
    with traffic(db.engine) as again:
        assert client.get(url, headers=tenant.headers).json == response.json
    assert again.probes == 1 and again.commits == 0 and again.writes == []
