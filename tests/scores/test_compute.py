"""Scores computed in SQL equal an independent Python computation, on both databases: every
source and transform, weights and tiers, missing values; the history rolls with the day."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from correlated.analytics import summaries
from correlated.ingest.engine import ingest
from correlated.models import utcnow
from correlated.scores import evaluate, service
from correlated.scores.models import ScoreHistory, ScoreValue
from correlated.signals import evaluate as signal_evaluate, service as signal_service

from ..signals.test_evaluate import NOW, load
from . import reference

BANDS = {"type": "bands", "bands": [{"max": 1, "points": 1}, {"max": 5, "points": 0.5},
                                    {"points": 0}]}
TIERS = [{"name": "A", "min": 60}, {"name": "B", "min": 40}, {"name": "C", "min": 15}]


def inputs(signal_id: str) -> list[dict]:
    return [
        {"source": {"field": "employees"}, "transform": "minmax", "weight": 2, "group": "fit"},
        {"source": {"field": "employees"}, "transform": {"type": "minmax", "clip": [10, 90],
                                                         "invert": True}},
        {"source": {"field": "plan"}, "weight": 1.5, "group": "fit", "transform": {
            "type": "map", "values": {"enterprise": 1, "pro": 0.6}, "default": 0.2}},
        {"source": {"field": "region"}, "transform": {"type": "map", "values": {"EMEA": 1}}},
        {"source": {"metric": "days_since_last_seen"}, "transform": BANDS, "weight": 3},
        {"source": {"field": "renewal_date"}, "transform": {"type": "recency", "days": 90}},
        {"source": {"field": "vip"}, "transform": "bool", "weight": 0.5},
        {"source": {"signal": signal_id}, "transform": "bool"},
        {"source": {"metric": "events", "window_days": 30, "compare": "previous"},
         "transform": {"type": "minmax", "clip": [5, 95]}},
        {"source": {"metric": "active_user_share", "window_days": 3},
         "transform": {"type": "bands", "bands": [{"max": 0.2, "points": 0},
                                                  {"max": 0.5, "points": 0.5}, {"points": 1}]}},
        {"source": {"metric": "sum", "event": "invoice_paid", "property": "amount",
                    "window_days": 30}, "transform": "minmax", "weight": 2},
        {"source": {"metric": "events", "event": "report_created", "window_days": 14},
         "transform": {"type": "bands", "bands": [{"max": 0, "points": 0},
                                                  {"max": 3, "points": 0.4},
                                                  {"points": 1}]}},
        {"source": {"metric": "active_days", "window_days": 30, "offset_days": 7},
         "transform": {"type": "recency", "days": 40}},
    ]


def setup(db, ws, now):
    load(db.session, ws)
    ingest(db.session, ws, "account", "update",
           [{"account_id": f"a{i}", "vip": i % 4 == 0} for i in range(0, 12, 2)])
    signal = signal_service.create(db.session, ws.id, {"name": "busy", "conditions": [
        {"metric": "events", "window_days": 30, "op": "gte", "value": 40}]})
    db.session.commit()
    summaries.ensure_fresh(db.session, ws.id, now.date())
    signal_evaluate.run(db.session, ws.id, signal.id, now, force=True)
    return signal


def stored(db, model_id: str) -> dict[str, ScoreValue]:
    return {v.entity_id: v for v in db.session.scalars(
        sa.select(ScoreValue).where(ScoreValue.model_id == model_id))}


def check(db, ws, body: dict, now) -> dict:
    model = service.create(db.session, ws.id, body)
    db.session.commit()
    summaries.ensure_fresh(db.session, ws.id, now.date())
    assert evaluate.run(db.session, ws.id, model.id, now, force=True) == 12
    got, want = stored(db, model.id), reference.scores(db.session, ws.id, body, now)
    assert set(got) == set(want)
    for aid, w in want.items():
        g = got[aid]
        assert g.score == pytest.approx(w["score"], abs=1e-6), aid
        assert g.tier == w["tier"], aid
        assert [c["points"] for c in g.contributions] == pytest.approx(w["points"], abs=1e-6), aid
        # Missing is reported as missing, and counts 0.
        assert [c["value"] is None for c in g.contributions] == [v is None for v in w["values"]]
    return want


@pytest.mark.parametrize("days", [0, 6, 40])
def test_every_transform_weight_and_tier_matches_python(db, workspace, days):
    now = NOW + timedelta(days=days)
    signal = setup(db, workspace, now)
    want = check(db, workspace, {"name": "all", "inputs": inputs(signal.id), "tiers": TIERS}, now)
    if days == 0:  # the data tells the inputs apart: every one varies; missing values occur
        points = [w["points"] for w in want.values()]
        same = [i for i in range(len(points[0])) if len({round(p[i], 6) for p in points}) == 1]
        assert not same, [[w["values"][i] for w in want.values()] for i in same]
        assert any(v is None for w in want.values() for v in w["values"])
    assert len({w["tier"] for w in want.values()}) >= 2


@pytest.mark.parametrize("pick", [[0], [2, 4], [5, 6, 7], [8, 9], [1, 10, 11, 12]])
def test_each_transform_alone_and_weights_that_sum_to_anything(db, workspace, pick):
    signal = setup(db, workspace, NOW)
    chosen = [dict(inputs(signal.id)[i], weight=w) for i, w in zip(pick, (7, 0.25, 3, 1))]
    check(db, workspace, {"name": "some", "inputs": chosen, "tiers": TIERS[:2]}, NOW)


def test_history_rolls_with_the_day(db, workspace):
    signal = setup(db, workspace, NOW)
    body = {"name": "h", "inputs": inputs(signal.id)[4:6], "tiers": TIERS}
    model = service.create(db.session, workspace.id, body)
    db.session.commit()
    days = [NOW, NOW + timedelta(hours=1), NOW + timedelta(days=1), NOW + timedelta(days=3)]
    for now in days:
        summaries.ensure_fresh(db.session, workspace.id, now.date())
        evaluate.run(db.session, workspace.id, model.id, now)
    rows = db.session.execute(sa.select(ScoreHistory.day, sa.func.count()).where(
        ScoreHistory.model_id == model.id).group_by(ScoreHistory.day)
        .order_by(ScoreHistory.day)).all()
    assert [(str(d)[:10], n) for d, n in rows] == [
        (d.date().isoformat(), 12) for d in (days[0], days[2], days[3])]
    # The latest day's history row is the current value; an older one, that day's score.
    last = dict(db.session.execute(sa.select(ScoreHistory.entity_id, ScoreHistory.score).where(
        ScoreHistory.model_id == model.id, ScoreHistory.day == days[3].date())).all())
    assert last == {aid: v.score for aid, v in stored(db, model.id).items()}
    first = dict(db.session.execute(sa.select(ScoreHistory.entity_id, ScoreHistory.score).where(
        ScoreHistory.model_id == model.id, ScoreHistory.day == days[0].date())).all())
    want = reference.scores(db.session, workspace.id, body, days[1])
    assert first == pytest.approx({aid: w["score"] for aid, w in want.items()}, abs=1e-6)
    assert first != last  # recency and last seen moved with the days


def test_due_after_new_data_an_edit_or_a_new_day(db, workspace):
    signal = setup(db, workspace, NOW)
    model = service.create(db.session, workspace.id, {"name": "d", "inputs": inputs(signal.id)})
    db.session.commit()
    now = utcnow()
    assert evaluate.run(db.session, workspace.id, model.id, now) == 12
    assert evaluate.run(db.session, workspace.id, model.id, now) is None  # current
    ingest(db.session, workspace, "event", "insert", [
        {"event_id": "new", "event": "sign_in", "user_id": "u1", "timestamp": now.isoformat()}])
    summaries.ensure_fresh(db.session, workspace.id, now.date())
    assert evaluate.run(db.session, workspace.id, model.id, now) == 12  # new data
    service.update(db.session, model, {"tiers": TIERS})
    db.session.commit()
    assert evaluate.run(db.session, workspace.id, model.id, utcnow()) == 12  # edited
    assert evaluate.run(db.session, workspace.id, model.id, utcnow()) is None
    assert evaluate.run(db.session, workspace.id, model.id, utcnow() + timedelta(days=1)) == 12


def test_a_recompute_rewrites_only_moved_values_and_drops_removed_entities(db, workspace):
    signal = setup(db, workspace, NOW)
    body = {"name": "u", "inputs": inputs(signal.id)[4:6], "tiers": TIERS}
    model = service.create(db.session, workspace.id, body)
    db.session.commit()
    assert evaluate.run(db.session, workspace.id, model.id, NOW, force=True) == 12
    before = {aid: (v.score, v.computed_at) for aid, v in stored(db, model.id).items()}
    later = NOW + timedelta(seconds=1)  # the same day: days bands and recency do not move
    ingest(db.session, workspace, "account", "remove", [{"account_id": "a3"}])
    db.session.commit()
    summaries.ensure_fresh(db.session, workspace.id, later.date())
    assert evaluate.run(db.session, workspace.id, model.id, later, force=True) == 11
    got = stored(db, model.id)
    want = reference.scores(db.session, workspace.id, body, later)
    assert set(got) == set(want) == set(before) - {"a3"}
    assert {a: v.score for a, v in got.items()} == pytest.approx(
        {a: w["score"] for a, w in want.items()}, abs=1e-6)
    # Nothing moved within the day: no value was rewritten (computed_at is its last change),
    # and today's history follows the values, without the removed account.
    assert {a: v.computed_at for a, v in got.items()} == {a: before[a][1] for a in got}
    today = dict(db.session.execute(sa.select(ScoreHistory.entity_id, ScoreHistory.score).where(
        ScoreHistory.model_id == model.id, ScoreHistory.day == later.date())).all())
    assert today == {a: v.score for a, v in got.items()}
