"""Scores in signal conditions, on both databases: score thresholds, tiers now and a tier
drop over a week, each against the stored values; no cycle between signals and scores; the
worker brings a signal using a score up to date after the score."""
from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from correlated import worker
from correlated.analytics import summaries
from correlated.ingest.engine import ingest
from correlated.models import utcnow
from correlated.scores import evaluate, service
from correlated.scores.models import ScoreHistory, ScoreValue
from correlated.signals import evaluate as signal_evaluate, service as signals
from correlated.signals.models import SignalMember

from ..signals.test_evaluate import load
from .test_api import MODEL


def scored(db, ws, now):
    model = service.create(db.session, ws.id, MODEL)
    db.session.commit()
    summaries.ensure_fresh(db.session, ws.id, now.date())
    evaluate.run(db.session, ws.id, model.id, now)
    return model


def members(db, ws, conditions, now) -> set[str]:
    signal = signals.create(db.session, ws.id, {"name": f"s{len(str(conditions))}",
                                                "conditions": conditions})
    db.session.commit()
    signal_evaluate.run(db.session, ws.id, signal.id, now, force=True)
    return set(db.session.scalars(sa.select(SignalMember.entity_id).where(
        SignalMember.signal_id == signal.id)))


def values(db, model_id) -> dict[str, ScoreValue]:
    return {v.entity_id: v for v in db.session.scalars(sa.select(ScoreValue).where(
        ScoreValue.model_id == model_id))}


def test_score_and_tier_conditions_match_the_stored_values(db, workspace):
    load(db.session, workspace)
    now = utcnow()
    week_ago = now - timedelta(days=7)
    model = scored(db, workspace, week_ago)
    before = values(db, model.id)
    # Enterprise accounts drop to free: their Fit falls, some out of tier A.
    ingest(db.session, workspace, "account", "update",
           [{"account_id": a, "plan": "free"} for a, v in before.items() if v.tier == "A"][:3])
    summaries.ensure_fresh(db.session, workspace.id, now.date())
    evaluate.run(db.session, workspace.id, model.id, now)
    after = values(db, model.id)
    assert members(db, workspace, [{"score": model.id, "op": "gte", "value": 50}], now) == {
        a for a, v in after.items() if v.score >= 50}
    assert members(db, workspace, [{"score": model.id, "op": "between", "value": [20, 60]}],
                   now) == {a for a, v in after.items() if 20 <= v.score <= 60}
    assert members(db, workspace, [{"score": model.id, "tier": ["A", "B"]}], now) == {
        a for a, v in after.items() if v.tier in ("A", "B")}
    was = dict(db.session.execute(sa.select(ScoreHistory.entity_id, ScoreHistory.tier).where(
        ScoreHistory.day == week_ago.date())).all())
    dropped = {a for a, v in after.items() if was.get(a) == "A" and v.tier in ("B", "C")}
    assert dropped  # the data has a drop to find
    assert members(db, workspace, [{"score": model.id, "tier_was": "A", "within_days": 7,
                                    "tier": ["B", "C"]}], now) == dropped


def test_no_cycles_and_no_dangling_references(client, db, tenant):
    load(db.session, tenant.workspace)
    x = signals.create(db.session, tenant.id, {"name": "X", "conditions": [
        {"field": "plan", "op": "eq", "value": "pro"}]})
    db.session.commit()
    body = {**MODEL, "inputs": MODEL["inputs"] + [
        {"source": {"signal": x.id}, "transform": "bool"}]}
    made = client.post("/api/v1/scores", json=body, headers=tenant.headers)
    assert made.status_code == 201
    score_id = made.get_json()["id"]
    y = client.post("/api/v1/signals", json={"name": "Y", "conditions": [
        {"score": score_id, "op": "gte", "value": 40}]}, headers=tenant.headers)
    assert y.status_code == 201
    # X using the score would make X depend on itself (the score has X as an input).
    cycle = client.patch(f"/api/v1/signals/{x.id}", json={"conditions": [
        {"score": score_id, "tier": "A"}]}, headers=tenant.headers)
    assert cycle.status_code == 422 and "a cycle" in cycle.get_json()["error"]
    # The score using Y would make it depend on itself through Y.
    cycle = client.patch(f"/api/v1/scores/{score_id}", json={"inputs": body["inputs"] + [
        {"source": {"signal": y.get_json()["id"]}, "transform": "bool"}]}, headers=tenant.headers)
    assert cycle.status_code == 422
    assert cycle.get_json()["problems"][0]["input"] == 5 and "a cycle" in cycle.get_json()["error"]
    bad = client.post("/api/v1/signals", json={"name": "Z", "conditions": [
        {"score": score_id, "tier": "Q"}]}, headers=tenant.headers)
    assert bad.status_code == 422 and "no tier 'Q'" in bad.get_json()["error"]
    assert client.delete(f"/api/v1/scores/{score_id}", headers=tenant.headers).status_code == 409
    assert client.delete(f"/api/v1/signals/{x.id}", headers=tenant.headers).status_code == 409


def test_the_worker_brings_a_signal_on_a_score_up_to_date(db, workspace):
    load(db.session, workspace)
    model = service.create(db.session, workspace.id, MODEL)
    signal = signals.create(db.session, workspace.id, {"name": "fit", "conditions": [
        {"score": model.id, "op": "gte", "value": 50}]})
    db.session.commit()
    passes = 0
    while worker.run_once(db.session):  # until nothing is due: signals and scores settle
        passes += 1
    assert passes == 2  # the signal first saw no scores; the score's computation made it due
    want = {a for a, v in values(db, model.id).items() if v.score >= 50}
    assert want and set(db.session.scalars(sa.select(SignalMember.entity_id).where(
        SignalMember.signal_id == signal.id))) == want
    assert worker.run_once(db.session) == 0
