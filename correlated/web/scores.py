"""Scores pages: the list, the editor with its live distribution, and the score panels of the
account and user pages (the breakdown "why" and the history)."""
from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from flask import abort, flash, jsonify, redirect, render_template, request, url_for

from ..analytics import summaries
from ..extensions import db
from ..ingest import fields as catalog
from ..models import utcnow
from ..scores import charts, evaluate, service
from ..scores.definitions import ModelError, describe, parse
from ..scores.models import ScoreModel, ScoreValue
from ..signals import service as signals
from ..signals.definitions import METRICS
from .blueprint import bp
from .common import workspace_id
from .lists import Column

STARTER = [{"label": "Days since last seen", "source": {"metric": "days_since_last_seen"},
            "transform": {"type": "bands", "bands": [{"max": 1, "points": 1},
                                                     {"max": 7, "points": 0.5}, {"points": 0}]},
            "weight": 1, "group": "engagement"}]
STARTER_TIERS = [{"name": "A", "min": 80}, {"name": "B", "min": 60}, {"name": "C", "min": 0}]


@bp.get("/scores")
def scores():
    """Every score model with its tier counts and average."""
    ws = workspace_id()
    found = service.of_workspace(db.session, ws)
    return render_template("scores/index.html", models=found, stats=_stats(ws))


def _stats(ws: int) -> dict[str, dict[str, Any]]:
    v = ScoreValue
    rows = db.session.execute(sa.select(v.model_id, v.tier, sa.func.count(), sa.func.avg(v.score))
                              .where(v.workspace_id == ws).group_by(v.model_id, v.tier)).all()
    out: dict[str, dict[str, Any]] = {}
    for model_id, tier, n, avg in rows:
        s = out.setdefault(model_id, {"count": 0, "total": 0.0, "tiers": {}})
        s["count"] += n
        s["total"] += float(avg or 0) * n
        s["tiers"][tier] = n
    for s in out.values():
        s["average"] = s["total"] / s["count"] if s["count"] else None
    return out


@bp.get("/scores/new")
def new_score():
    """The editor, with one input to start from."""
    return _editor(None, {"name": "", "object": "account", "inputs": json.dumps(STARTER, indent=1),
                          "tiers": json.dumps(STARTER_TIERS)})


@bp.get("/scores/<model_id>")
def score(model_id: str):
    """One model in the editor, its distribution drawn from the stored values."""
    model = _model(model_id)
    return _editor(model, {"name": model.name, "object": model.object,
                           "inputs": json.dumps(model.inputs, indent=1),
                           "tiers": json.dumps(model.tiers)})


def _editor(model: ScoreModel | None, form: dict[str, Any], status: int = 200):
    ws = workspace_id()
    return render_template("scores/editor.html", model=model, form=form,
                           pickers=_pickers(ws)), status


@bp.post("/scores/new")
def create_score():
    ws = workspace_id()
    try:
        model = service.create(db.session, ws, _form_body())
    except ModelError as exc:
        return _refused(None, exc)
    db.session.commit()
    _compute(ws, model.id)
    flash(f"Saved {model.name!r} and scored every {model.object}.", "success")
    return redirect(url_for("dashboard.score", model_id=model.id))


@bp.post("/scores/<model_id>")
def update_score(model_id: str):
    model = _model(model_id)
    try:
        service.update(db.session, model, _form_body())
    except ModelError as exc:
        return _refused(model, exc)
    db.session.commit()
    _compute(model.workspace_id, model.id)
    flash(f"Saved {model.name!r} and scored every {model.object} again.", "success")
    return redirect(url_for("dashboard.score", model_id=model.id))


def _refused(model: ScoreModel | None, exc: ModelError):
    db.session.rollback()
    for problem in exc.problems:
        flash(describe(problem), "error")
    return _editor(model, dict(request.form), 422)


def _compute(ws: int, model_id: str) -> None:
    """Score at once after a save (the worker would within a poll): the list can sort by it."""
    summaries.ensure_fresh(db.session, ws)
    evaluate.run(db.session, ws, model_id, utcnow(), force=True)


@bp.post("/scores/preview")
def preview_score():
    """The editor's live preview (JSON): the histogram figure, tier counts, top and bottom."""
    ws = workspace_id()
    try:
        model = parse(db.session, ws, {**_form_body(), "name": "preview"})
    except ModelError as exc:
        return jsonify({"problems": [describe(p) for p in exc.problems]}), 422
    summaries.ensure_fresh(db.session, ws)
    result = service.preview(db.session, ws, model)
    return jsonify({**result, "figure": charts.distribution(result)})


@bp.post("/scores/<model_id>/delete")
def delete_score(model_id: str):
    model = _model(model_id)
    if service.users_of(db.session, model):
        flash("Signals use this score: change them first.", "error")
        return redirect(url_for("dashboard.score", model_id=model.id))
    service.delete(db.session, model)
    db.session.commit()
    flash(f"Deleted {model.name!r}.", "success")
    return redirect(url_for("dashboard.scores"))


def _form_body() -> dict[str, Any]:
    form = request.form
    return {"name": form.get("name", ""), "object": form.get("object", "account"),
            "inputs": _json(form.get("inputs"), []), "tiers": _json(form.get("tiers"), [])}


def _json(text: str | None, empty: Any) -> Any:
    try:
        return json.loads(text) if text and text.strip() else empty
    except ValueError:
        return None  # reported by the parser as the field's problem


def _model(model_id: str) -> ScoreModel:
    model = db.session.get(ScoreModel, (workspace_id(), model_id)) if "\x00" not in model_id \
        else None
    if model is None:
        abort(404, "No such score in this workspace.")
    return model


def _pickers(ws: int) -> dict[str, Any]:
    """What the editor's "add input" offers: fields per object, metrics, signals."""
    out: dict[str, Any] = {"metrics": [m for m in METRICS if m != "sum"] + ["active_user_share"],
                           "objects": {}}
    for obj in ("account", "user"):
        known = catalog.load_catalog(db.session, ws, obj)
        out["objects"][obj] = sorted(({"key": f.key, "label": f.label, "type": f.type}
                                      for f in known.values() if f.key not in catalog.CORE[obj]),
                                     key=lambda f: f["label"].lower())
    out["signals"] = [{"id": s.id, "name": s.name, "object": s.object}
                      for s in signals.of_workspace(db.session, ws)]
    return out


# --- panels and columns of other pages ------------------------------------------------------

def score_columns(obj: str) -> list[Column]:
    """Each model of `obj` as a list column: its score (sortable, filterable) with the tier
    under it (the list still fits a laptop); in the CSV the tier is a column of its own. Tiers
    filter by URL: ?field=tier:<model id>&op=eq&value=A."""
    out = []
    for model in service.of_workspace(db.session, workspace_id(), obj):
        out.append(Column(f"score:{model.id}", model.name, "SCORE", True))
        if request.args.get("format") == "csv":
            out.append(Column(f"tier:{model.id}", f"{model.name} tier", "TIER"))
    return out


@bp.app_template_global("entity_scores")
def entity_scores(obj: str, entity_id: str) -> list[dict[str, Any]]:
    """For the account and user pages: each score with its breakdown and history figures."""
    ws = workspace_id()
    found = service.scores_of(db.session, ws, entity_id, obj)
    history = service.history_of(db.session, ws, entity_id, [s["id"] for s in found])
    tiers = {m.id: m.tiers for m in service.of_workspace(db.session, ws, obj)}
    return [{**s, "breakdown": charts.breakdown(s),
             "history": charts.history(history[s["id"]], tiers.get(s["id"], []))}
            for s in found]
