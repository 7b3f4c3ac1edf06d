"""Scores as a service: create, change, delete, preview, and read values and history.

Takes the session and the workspace id; never commits (the caller's unit of work does).
"""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..models import utcnow
from .compile import select
from .definitions import Model, parse
from .evaluate import model_of
from .models import ScoreHistory, ScoreModel, ScoreValue

BUCKETS = 10  # the preview's histogram: ten ranges of ten points
EXTREMES = 10


def create(session: Session, workspace_id: int, body: Any) -> ScoreModel:
    """A new model (ModelError when it is not valid); computed by the worker or `evaluate.run`."""
    m = parse(session, workspace_id, body)
    model = ScoreModel(workspace_id=workspace_id, name=m.name, object=m.object,
                       inputs=m.raw_inputs, tiers=m.raw_tiers)
    session.add(model)
    session.flush()
    return model


def update(session: Session, model: ScoreModel, body: Any) -> ScoreModel:
    """Apply a partial model; the worker recomputes it (its updated_at is newer)."""
    m = parse(session, model.workspace_id, body, base=model)
    model.name, model.object = m.name, m.object
    model.inputs, model.tiers = m.raw_inputs, m.raw_tiers
    model.updated_at = utcnow()
    session.flush()
    return model


def users_of(session: Session, model: ScoreModel) -> list[Any]:
    """The signals whose conditions use `model`."""
    from ..signals.definitions import scores_in
    from ..signals.models import Signal

    found = session.scalars(sa.select(Signal).where(Signal.workspace_id == model.workspace_id))
    return [s for s in found if model.id in scores_in(s.conditions)]


def delete(session: Session, model: ScoreModel) -> None:
    """Remove a model with its values and history (signals using it are refused first)."""
    for table in (ScoreValue.__table__, ScoreHistory.__table__):
        session.execute(sa.delete(table).where(table.c.workspace_id == model.workspace_id,
                                               table.c.model_id == model.id))
    session.delete(model)
    session.flush()


def of_workspace(session: Session, workspace_id: int, obj: str | None = None) -> list[ScoreModel]:
    query = sa.select(ScoreModel).where(ScoreModel.workspace_id == workspace_id)
    if obj:
        query = query.where(ScoreModel.object == obj)
    return list(session.scalars(query.order_by(ScoreModel.name, ScoreModel.id)))


def preview(session: Session, workspace_id: int, model: Model,
            now: datetime | None = None) -> dict[str, Any]:
    """The distribution a model gives now (nothing saved): histogram buckets, tier counts, and
    the top and bottom entities. One computation, read once."""
    from ..signals.compile import BASES

    now = now or utcnow()
    query = select(session.connection(), workspace_id, model, now.date(), now).subquery("q")
    table, key_name, _ = BASES[model.object]
    label = table.c.name if model.object == "account" else table.c.email
    rows = session.execute(
        sa.select(query.c.entity_id, label, query.c.score, query.c.tier)
        .join(table, sa.and_(table.c.workspace_id == workspace_id,
                             table.c[key_name] == query.c.entity_id))
        .order_by(query.c.score.desc(), query.c.entity_id)).all()
    return summarize(model, [{"id": r[0], "name": r[1], "score": r[2], "tier": r[3]}
                             for r in rows])


def summarize(model: Model, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Histogram, tier counts and extremes of scored rows (sorted by score, highest first)."""
    counts = [0] * BUCKETS
    for r in rows:
        counts[min(int(r["score"] // (100 / BUCKETS)), BUCKETS - 1)] += 1
    tiers = {t.name: 0 for t in model.tiers}
    untiered = 0
    for r in rows:
        if r["tier"] is None:
            untiered += 1
        else:
            tiers[r["tier"]] = tiers.get(r["tier"], 0) + 1
    width = 100 // BUCKETS
    return {"count": len(rows),
            "buckets": [{"from": i * width, "to": (i + 1) * width, "count": n}
                        for i, n in enumerate(counts)],
            "tiers": [{"name": name, "count": n} for name, n in tiers.items()]
            + ([{"name": None, "count": untiered}] if untiered else []),
            "top": rows[:EXTREMES], "bottom": list(reversed(rows[-EXTREMES:]))}


def values_query(model: ScoreModel, tier: str | None = None) -> sa.Select:
    """The model's values with the account name or user email, in entity ID order."""
    from ..signals.compile import BASES

    v = ScoreValue
    table, key_name, _ = BASES[model.object]
    label = table.c.name if model.object == "account" else table.c.email
    name = sa.select(label).where(table.c.workspace_id == v.workspace_id,
                                  table.c[key_name] == v.entity_id).scalar_subquery()
    # The model's computed_at: a value is rewritten only when it changes (evaluate.compute).
    computed = sa.select(ScoreModel.computed_at).where(
        ScoreModel.workspace_id == v.workspace_id, ScoreModel.id == v.model_id).scalar_subquery()
    query = (sa.select(v.entity_id, name.label("name"), v.score, v.tier, v.contributions,
                       computed.label("computed_at"))
             .where(v.workspace_id == model.workspace_id, v.model_id == model.id)
             .order_by(v.entity_id))
    return query.where(v.tier == tier) if tier else query


def explain(model: ScoreModel, score: float, tier: str | None, contributions: Any,
            labels: list[str] | None = None) -> dict[str, Any]:
    """A stored value with the reasons: each input's label, group, weight, value and points."""
    parsed = contributions if not isinstance(contributions, str) else json.loads(contributions)
    inputs = model.inputs or []
    labels = labels or [label_of(item, i) for i, item in enumerate(inputs)]
    got = [parsed[i] if i < len(parsed or []) else {"value": None, "points": 0}
           for i in range(len(inputs))]
    shown = apportion([float(g.get("points") or 0) for g in got], score)
    parts = [{"label": labels[i], "group": item.get("group"), "weight": item.get("weight", 1),
              "value": got[i].get("value"), "points": shown[i],
              "missing": got[i].get("value") is None} for i, item in enumerate(inputs)]
    return {"id": model.id, "name": model.name, "score": round(score, 1), "tier": tier,
            "contributions": parts}


def apportion(points: list[float], score: float) -> list[float]:
    """Points rounded to one decimal so that they add up to the score rounded to one decimal
    (largest remainders get the tenths), so a breakdown always adds up to the score shown."""
    tenths = [p * 10 for p in points]
    floors = [int(t) for t in tenths]
    left = int(round(score * 10)) - sum(floors)
    for i in sorted(range(len(points)), key=lambda i: floors[i] - tenths[i])[:max(left, 0)]:
        floors[i] += 1
    return [f / 10 for f in floors]


def label_of(item: dict[str, Any], i: int) -> str:
    """An input's label as stored, or one made from its source."""
    if item.get("label"):
        return item["label"]
    source = item.get("source") or {}
    if "field" in source:
        return str(source["field"])
    if "signal" in source:
        return f"in signal {source['signal']}"
    what = str(source.get("metric", f"input {i + 1}"))
    if source.get("event"):
        what += f":{source['event']}"
    if source.get("window_days"):
        what += f" {source['window_days']}d"
    return what + (" change %" if source.get("compare") else "")


def scores_of(session: Session, workspace_id: int, entity_id: str,
              obj: str) -> list[dict[str, Any]]:
    """Every score of an account or user, with its contributions."""
    rows = session.execute(
        sa.select(ScoreModel, ScoreValue.score, ScoreValue.tier, ScoreValue.contributions,
                  ScoreModel.computed_at)
        .join(ScoreValue, sa.and_(ScoreValue.workspace_id == ScoreModel.workspace_id,
                                  ScoreValue.model_id == ScoreModel.id))
        .where(ScoreModel.workspace_id == workspace_id, ScoreModel.object == obj,
               ScoreValue.entity_id == entity_id)
        .order_by(ScoreModel.name)).all()
    return [{**explain(m, score, tier, c, labels_of(session, m)), "computed_at": at}
            for m, score, tier, c, at in rows]


def labels_of(session: Session, model: ScoreModel) -> list[str] | None:
    """The inputs' labels as the model's parser names them (None if it no longer parses)."""
    from .definitions import ModelError

    try:
        return [i.label for i in model_of(session, model).inputs]
    except ModelError:
        return None


def history_of(session: Session, workspace_id: int, entity_id: str, model_ids: list[str],
               days: int = 90, today: date | None = None) -> dict[str, list[dict[str, Any]]]:
    """Per model: the entity's daily (day, score, tier) over the last `days`, oldest first."""
    since = (today or utcnow().date()) - timedelta(days=days - 1)
    h = ScoreHistory
    rows = session.execute(
        sa.select(h.model_id, h.day, h.score, h.tier)
        .where(h.workspace_id == workspace_id, h.entity_id == entity_id,
               h.model_id.in_(model_ids), h.day >= since).order_by(h.model_id, h.day)).all()
    out: dict[str, list[dict[str, Any]]] = {mid: [] for mid in model_ids}
    for mid, day, score, tier in rows:
        out[mid].append({"day": day.isoformat() if hasattr(day, "isoformat") else str(day),
                         "score": round(score, 2), "tier": tier})
    return out

