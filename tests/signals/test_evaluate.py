"""Signal membership computed in SQL equals an independent Python computation, on both
databases: every condition kind, windows moving with the day, dimension changes, a signal of
signals, a user changing account; and the transitions it writes."""
from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from correlated.analytics import summaries
from correlated.ingest.engine import ingest
from correlated.models import utcnow
from correlated.signals import TRANSITION_HOOKS, evaluate, service
from correlated.signals.models import Signal, SignalMember, Transition

from . import reference

NOW = utcnow()
PLANS = ["free", "pro", "enterprise"]
NAMES = ["sign_in", "report_created", "invoice_paid", "export"]


def load(session, ws, seed: int = 3) -> None:
    rnd = random.Random(seed)
    accounts = [{"account_id": f"a{i}", "name": f"Acme {i}", "plan": PLANS[i % 3],
                 "employees": 10 * i, "region": ("EMEA", "AMER")[i % 2],
                 "renewal_date": (NOW.date() + timedelta(days=20 * i - 60)).isoformat()}
                for i in range(12)]
    accounts[5].pop("region")
    ingest(session, ws, "account", "upsert", accounts)
    users = [{"user_id": f"u{i}", "email": f"u{i}@x.example", "account_id": f"a{i % 12}",
              "role": ("admin", "member")[i % 2]} for i in range(40)]
    ingest(session, ws, "user", "upsert", users)
    events = []
    for n in range(1500):
        user = rnd.randrange(40)
        ago = timedelta(days=rnd.triangular(0, 120, 5), hours=rnd.random() * 3)
        name = rnd.choice(NAMES)
        row = {"event_id": f"e{n}", "event": name, "user_id": f"u{user}",
               "timestamp": (NOW - ago).isoformat()}
        if name == "invoice_paid":
            row["amount"] = rnd.randrange(10, 500)
        if n % 7 == 0:
            row["account_id"] = f"a{user % 12}"  # given, not inferred
        events.append(row)
    for start in range(0, len(events), 500):
        ingest(session, ws, "event", "insert", events[start:start + 500])


DEFINITIONS = [
    {"conditions": [{"field": "plan", "op": "eq", "value": "free"},
                    {"metric": "active_users", "window_days": 7, "op": "gte", "value": 2}]},
    {"match": "any", "conditions": [{"field": "employees", "op": "gt", "value": 80},
                                    {"field": "region", "op": "is_not_set"}]},
    {"conditions": [{"field": "plan", "op": "in", "value": ["pro", "enterprise"]},
                    {"field": "name", "op": "contains", "value": "ME 1"}]},
    {"conditions": [{"field": "region", "op": "ne", "value": "EMEA"},
                    {"field": "employees", "op": "between", "value": [20, 90]}]},
    {"conditions": [{"field": "renewal_date", "op": "within_days", "value": 45}]},
    {"conditions": [{"field": "renewal_date", "op": "more_than_days_ago", "value": 30}]},
    {"conditions": [{"metric": "events", "event": "report_created", "window_days": 30,
                     "op": "gte", "value": 8}]},
    {"conditions": [{"metric": "events", "window_days": 60, "offset_days": 30, "op": "gte",
                     "value": 20},
                    {"metric": "events", "window_days": 30, "op": "lt", "value": 40}]},
    {"conditions": [{"metric": "active_days", "window_days": 14, "op": "gte", "value": 5}]},
    {"conditions": [{"metric": "days_since_last_seen", "op": "lte", "value": 1}]},
    {"conditions": [{"metric": "sum", "event": "invoice_paid", "property": "amount",
                     "window_days": 30, "op": "gte", "value": 600}]},
    {"conditions": [{"metric": "events", "window_days": 30, "compare": "previous", "op": "gte",
                     "value": 10}]},
    {"object": "user", "conditions": [{"metric": "events", "window_days": 7, "op": "gte",
                                       "value": 3}, {"field": "role", "op": "eq", "value": "admin"}]},
    {"object": "user", "conditions": [{"metric": "days_since_last_seen", "op": "gt", "value": 5},
                                      {"field": "account_id", "op": "in", "value": ["a1", "a2"]}]},
]


def save(db, ws, definition: dict, name: str = "s") -> Signal:
    signal = service.create(db.session, ws.id, {"name": name, **definition})
    db.session.commit()
    return signal


def check(db, ws, signal: Signal, definition: dict, now: datetime) -> set[str]:
    summaries.ensure_fresh(db.session, ws.id, now.date())
    evaluate.run(db.session, ws.id, signal.id, now, force=True)
    got = set(db.session.scalars(sa.select(SignalMember.entity_id).where(
        SignalMember.signal_id == signal.id)))
    want = reference.members(db.session, ws.id, {"object": "account", **definition}, now)
    assert got == want, definition
    return got


@pytest.mark.parametrize("days", [0, 1, 9, 40])
def test_every_condition_kind_matches_python(db, workspace, days):
    load(db.session, workspace)
    sizes = []
    for i, definition in enumerate(DEFINITIONS):
        signal = save(db, workspace, definition, f"s{i}")
        sizes.append(len(check(db, workspace, signal, definition, NOW + timedelta(days=days))))
    assert any(sizes) and not all(s == sizes[0] for s in sizes)  # the data tells them apart


def test_windows_move_with_the_day(db, workspace):
    load(db.session, workspace)
    definition = DEFINITIONS[0]
    signal = save(db, workspace, definition)
    seen = [check(db, workspace, signal, definition, NOW + timedelta(days=d)) for d in (0, 3, 8)]
    assert seen[0] and not seen[2]  # activity ages out of the 7-day window
    exits = db.session.scalars(sa.select(Transition.entity_id).where(
        Transition.kind == "exited")).all()
    assert set(exits) == seen[0] - seen[2]


def test_dimension_changes_and_a_signal_of_signals(db, workspace):
    load(db.session, workspace)
    changed = {"conditions": [{"field": "plan", "changed_to": "enterprise", "within_days": 7}]}
    signal = save(db, workspace, changed, "upgraded")
    assert check(db, workspace, signal, changed, NOW) == set()
    ingest(db.session, workspace, "account", "update",
           [{"account_id": "a0", "plan": "enterprise"}, {"account_id": "a1", "plan": "free"},
            {"account_id": "a2", "plan": "enterprise"}])  # a2 was enterprise already
    now = utcnow()
    assert check(db, workspace, signal, changed, now) == {"a0"}
    combined = {"conditions": [{"signal": signal.id, "op": "not_in"},
                               {"field": "plan", "op": "eq", "value": "enterprise"}]}
    other = save(db, workspace, combined, "enterprise, not upgraded")
    assert check(db, workspace, other, combined, now) == {"a2", "a5", "a8", "a11"}
    # A week later the change has left the window: a0 leaves one and joins the other.
    later = now + timedelta(days=8)
    assert check(db, workspace, signal, changed, later) == set()
    assert "a0" in check(db, workspace, other, combined, later)
    from_free = {"conditions": [{"field": "plan", "changed_from": "pro", "within_days": 3},
                                {"field": "plan", "changed": True, "within_days": 3}]}
    assert check(db, workspace, save(db, workspace, from_free, "f"), from_free, now) == {"a1"}


def test_a_user_changing_account_moves_its_activity(db, workspace):
    load(db.session, workspace)
    definition = {"conditions": [{"metric": "active_users", "window_days": 120, "op": "gte",
                                  "value": 5}]}
    signal = save(db, workspace, definition)
    before = check(db, workspace, signal, definition, NOW)
    moved = [{"user_id": f"u{i}", "account_id": "a3"} for i in range(0, 40, 12)]
    ingest(db.session, workspace, "user", "update", moved)
    after = check(db, workspace, signal, definition, NOW)
    assert before != after


def test_first_evaluation_is_a_backfill_then_transitions_count(db, workspace):
    load(db.session, workspace)
    seen = []
    TRANSITION_HOOKS.append(lambda session, ws, signal, ts: seen.append([t.kind for t in ts]))
    try:
        definition = {"conditions": [{"field": "plan", "op": "eq", "value": "free"}]}
        signal = save(db, workspace, definition)
        now = utcnow()
        check(db, workspace, signal, definition, now)
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Transition).where(
            Transition.backfill.is_(False))) == 0
        ingest(db.session, workspace, "account", "update", [{"account_id": "a1", "plan": "free"},
                                                            {"account_id": "a0", "plan": "pro"}])
        check(db, workspace, signal, definition, now)
        rows = db.session.execute(sa.select(Transition.entity_id, Transition.kind,
                                            Transition.values).where(
            Transition.backfill.is_(False)).order_by(Transition.kind)).all()
        assert [(r[0], r[1]) for r in rows] == [("a1", "entered"), ("a0", "exited")]
        assert rows[0][2] == {"plan": "free"} and rows[1][2] == {"plan": "pro"}
        assert seen == [["entered"] * 4, ["entered", "exited"]]
        # Evaluating again with nothing changed writes nothing (and is not even due).
        assert evaluate.run(db.session, workspace.id, signal.id, now) is None
        assert evaluate.run(db.session, workspace.id, signal.id, now, force=True) == []
    finally:
        TRANSITION_HOOKS.pop()
