"""The worker evaluates only what changed: after each sync, the signals look at the accounts
and users that sync touched (and the members of the signals they use that moved), and their
members still equal the independent Python computation, on both databases; a new day is a
full evaluation again."""
from __future__ import annotations

import random
from datetime import timedelta

import sqlalchemy as sa

from correlated import worker
from correlated.analytics import summaries
from correlated.ingest.engine import ingest
from correlated.models import User, utcnow
from correlated.signals import evaluate, pending, service
from correlated.signals.models import PendingKey, Signal, SignalMember

from . import reference
from .test_evaluate import DEFINITIONS, load

# Of test_evaluate's: a dimension with active users, windows with an offset, a property sum, a
# change against the previous window, one on users (the Python reference's cost sets how many;
# test_evaluate checks every kind).
KINDS = (0, 7, 10, 11, 12)
UPGRADED = {"conditions": [{"field": "plan", "changed_to": "enterprise", "within_days": 7}]}


def save_all(db, ws) -> dict[str, dict]:
    """Signals of every kind (and one of signals); id -> definition."""
    saved = {}
    for i, definition in enumerate([DEFINITIONS[k] for k in KINDS] + [UPGRADED]):
        saved[service.create(db.session, ws.id, {"name": f"s{i}", **definition}).id] = definition
    upgraded = list(saved)[-1]
    both = {"match": "any", "conditions": [{"signal": upgraded, "op": "in"},
                                           {"field": "plan", "op": "eq", "value": "free"}]}
    saved[service.create(db.session, ws.id, {"name": "either", **both}).id] = both
    db.session.commit()
    return saved


def assert_members_match(db, ws, saved: dict[str, dict], now) -> None:
    db.session.rollback()
    for sid, definition in saved.items():
        got = set(db.session.scalars(sa.select(SignalMember.entity_id)
                                     .where(SignalMember.signal_id == sid)))
        want = reference.members(db.session, ws.id, {"object": "account", **definition}, now)
        assert got == want, definition


def scope_of(db, ws, sid: str, now) -> set[str] | None:
    """The ids the next evaluation of `sid` will look at (None: all), after a refresh."""
    summaries.ensure_fresh(db.session, ws.id, now.date())
    signal = db.session.get(Signal, (ws.id, sid), populate_existing=True)
    only = pending.scope(db.session, signal, evaluate.inputs_at(db.session, ws.id), now.date())
    ids = None if only is None else set(db.session.scalars(only))
    db.session.rollback()
    return ids


def sync(db, ws, rnd: random.Random, now, n: int) -> set[str]:
    """Events of a few users today, a plan change, a user moving account, an account archived
    and one restored; the accounts of the users with events (as they are now)."""
    users = rnd.sample(range(40), 4)
    accounts = set(db.session.scalars(sa.select(User.account_id).where(
        User.workspace_id == ws.id, User.user_id.in_([f"u{u}" for u in users]))))
    ingest(db.session, ws, "event", "insert", [
        {"event_id": f"n{n}-{u}-{k}", "event": rnd.choice(["sign_in", "report_created"]),
         "user_id": f"u{u}", "timestamp": (now - timedelta(hours=k)).isoformat()}
        for u in users for k in range(3)])
    plan = rnd.randrange(12)
    ingest(db.session, ws, "account", "update",
           [{"account_id": f"a{plan}", "plan": rnd.choice(["free", "pro", "enterprise"])}])
    mover, target = rnd.randrange(40), rnd.randrange(12)
    ingest(db.session, ws, "user", "update", [{"user_id": f"u{mover}", "account_id": f"a{target}"}])
    archived = rnd.randrange(12)
    ingest(db.session, ws, "account", "remove", [{"account_id": f"a{archived}"}])
    ingest(db.session, ws, "account", "upsert", [{"account_id": f"a{(archived + 5) % 12}",
                                                 "name": f"Acme {(archived + 5) % 12}"}])
    return accounts


def test_each_sync_is_evaluated_for_what_it_touched(db, workspace):
    load(db.session, workspace)
    saved = save_all(db, workspace)
    now = utcnow()
    worker.refresh_and_evaluate(db.session, now)  # the back-fill: full
    assert_members_match(db, workspace, saved, now)
    rnd = random.Random(11)
    plain = next(iter(saved))
    for n in range(2):
        now = utcnow()
        active = sync(db, workspace, rnd, now, n)
        scope = scope_of(db, workspace, plain, now)
        assert scope is not None and active <= scope and len(scope) < 12
        assert worker.refresh_and_evaluate(db.session, now) == len(saved)
        assert_members_match(db, workspace, saved, now)
    # Every signal evaluated past the kept keys: none are left.
    assert db.session.scalar(sa.select(sa.func.count()).select_from(PendingKey)) == 0
    # The next day, windows move for everyone: a full evaluation.
    tomorrow = utcnow() + timedelta(days=1)
    assert scope_of(db, workspace, plain, tomorrow) is None
    worker.refresh_and_evaluate(db.session, tomorrow)
    assert_members_match(db, workspace, saved, tomorrow)


def test_a_signal_of_signals_sees_what_moved_in_the_one_it_uses(db, workspace):
    load(db.session, workspace)
    saved = save_all(db, workspace)
    upgraded, either = list(saved)[-2:]
    now = utcnow()
    worker.refresh_and_evaluate(db.session, now)
    ingest(db.session, workspace, "account", "update", [{"account_id": "a1", "plan": "enterprise"}])
    now = utcnow()
    summaries.ensure_fresh(db.session, workspace.id, now.date())
    # Only `upgraded` is evaluated now; `either` later sees a1 through its transition.
    evaluate.run(db.session, workspace.id, upgraded, now)
    db.session.execute(sa.delete(PendingKey))  # what `either` would see from the refresh alone
    db.session.commit()
    assert scope_of(db, workspace, either, now) == {"a1"}
    evaluate.run(db.session, workspace.id, either, now)
    assert_members_match(db, workspace, saved, now)
    assert "a1" in set(db.session.scalars(sa.select(SignalMember.entity_id)
                                          .where(SignalMember.signal_id == either)))


def test_no_signals_keep_no_keys(db, workspace):
    load(db.session, workspace)
    summaries.ensure_fresh(db.session, workspace.id)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(PendingKey)) == 0
