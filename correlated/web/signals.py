"""Signals pages: the list with counts and sparklines, the builder with its live preview, one
signal's members and history; and the signal panels of the account and user pages."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import abort, flash, jsonify, redirect, render_template, request, url_for

from ..analytics import summaries
from ..extensions import db
from ..ingest import fields as catalog
from ..models import utcnow
from ..signals import service
from ..signals.api import member_query, member_row
from ..signals.definitions import METRICS, OPS_BY_TYPE, DefinitionError, describe, parse
from ..signals.models import CATEGORIES, DimensionChange, Signal, Transition
from .blueprint import bp
from .common import workspace_id


@bp.get("/signals")
def signals():
    """Every signal: members now, entered and exited in 7 days, members per day."""
    ws = workspace_id()
    found = service.of_workspace(db.session, ws)
    counts = service.counts(db.session, ws)
    series = service.members_per_day(db.session, ws, [s.id for s in found])
    return render_template("signals/index.html", signals=found, counts=counts,
                           sparklines={sid: sparkline(v) for sid, v in series.items()})


def sparkline(values: list[int], width: int = 120, height: int = 28) -> str:
    """An SVG polyline's points for a small series (no chart library needed)."""
    top = max(values or [0]) or 1
    step = width / max(len(values) - 1, 1)
    return " ".join(f"{i * step:.1f},{height - 2 - (v / top) * (height - 4):.1f}"
                    for i, v in enumerate(values))


@bp.get("/signals/new")
def new_signal():
    """The builder: definition on the left, live preview on the right."""
    return render_template("signals/builder.html", pickers=pickers(workspace_id()),
                           categories=CATEGORIES)


@bp.post("/signals/new")
def create_signal():
    ws = workspace_id()
    body = _form_body()
    try:
        signal = service.create(db.session, ws, body)
    except DefinitionError as exc:
        db.session.rollback()
        for problem in exc.problems:
            flash(describe(problem), "error")
        return render_template("signals/builder.html", pickers=pickers(ws), categories=CATEGORIES,
                               form=request.form), 422
    db.session.commit()
    flash(f"Saved {signal.name!r}: its members are filled in within seconds.", "success")
    return redirect(url_for("dashboard.signal", signal_id=signal.id))


@bp.post("/signals/preview")
def preview_signal():
    """The builder's live preview (JSON): count and sample, or the problems."""
    ws = workspace_id()
    try:
        definition = parse(db.session, ws, {**_form_body(), "name": "preview"})
    except DefinitionError as exc:
        return jsonify({"problems": [describe(p) for p in exc.problems]}), 422
    summaries.ensure_fresh(db.session, ws)
    result = service.preview(db.session, ws, definition)
    names = _names(ws, definition.object, [s["id"] for s in result["sample"]])
    for s in result["sample"]:
        s["name"] = names.get(s["id"], s["id"])
    return jsonify(result)


def _form_body() -> dict[str, Any]:
    import json

    form = request.form
    try:
        conditions = json.loads(form.get("conditions") or "[]")
    except ValueError:
        conditions = None
    return {"name": form.get("name", ""), "category": form.get("category", "other"),
            "object": form.get("object", "account"), "match": form.get("match", "all"),
            "conditions": conditions}


def pickers(ws: int) -> dict[str, Any]:
    """Fields per object with their ops, metrics, and event names, for the builder's pickers."""
    out: dict[str, Any] = {"metrics": list(METRICS), "objects": {}}
    for obj in ("account", "user"):
        known = catalog.load_catalog(db.session, ws, obj, include_hidden=False)
        out["objects"][obj] = sorted(
            ({"key": f.key, "label": f.label, "type": f.type,
              "ops": list(OPS_BY_TYPE.get(f.type, ()))} for f in known.values()
             if f.key not in (catalog.CORE[obj]) or f.key in ("name", "email")),
            key=lambda f: f["label"].lower())
    out["events"] = sorted(summaries_event_names(ws))
    return out


def summaries_event_names(ws: int) -> set[str]:
    from ..models import DailyEvents

    return set(db.session.scalars(sa.select(DailyEvents.event).where(
        DailyEvents.workspace_id == ws).distinct()))


def _signal(signal_id: str) -> Signal:
    signal = db.session.get(Signal, (workspace_id(), signal_id))
    if signal is None:
        abort(404, "No such signal in this workspace.")
    return signal


@bp.get("/signals/<signal_id>")
def signal(signal_id: str):
    """One signal: members, entries and exits per day, the history feed."""
    s = _signal(signal_id)
    feed, names = _feed(s)
    return render_template("signals/detail.html", signal=s, members=_members(s), feed=feed,
                           names=names, counts=_counts(s), daily=_daily_moves(s))


@bp.get("/signals/<signal_id>/live")
def signal_live(signal_id: str):
    """What the signal page polls, so entries the worker writes appear without a reload: the
    counts and the history feed (HTML, rendered as the page renders it)."""
    s = _signal(signal_id)
    feed, names = _feed(s)
    return jsonify({"counts": _counts(s),
                    "feed": render_template("signals/_feed.html", feed=feed, names=names),
                    "members": render_template("signals/_members.html", signal=s,
                                               members=_members(s))})


def _members(s: Signal) -> list[dict[str, Any]]:
    return [member_row(r) for r in db.session.execute(member_query(s).limit(200))]


def _feed(s: Signal) -> tuple[list[Transition], dict[str, str]]:
    t = Transition
    feed = db.session.scalars(sa.select(t).where(t.workspace_id == s.workspace_id,
                                                 t.signal_id == s.id, t.backfill.is_(False))
                              .order_by(t.id.desc()).limit(50)).all()
    return feed, _names(s.workspace_id, s.object, [f.entity_id for f in feed])


def _counts(s: Signal) -> dict[str, int]:
    return service.counts(db.session, s.workspace_id).get(
        s.id, {"members": 0, "entered": 0, "exited": 0})


def _daily_moves(s: Signal, days: int = 30) -> list[dict[str, Any]]:
    today = utcnow().date()
    rows = db.session.execute(sa.select(Transition.at, Transition.kind).where(
        Transition.workspace_id == s.workspace_id, Transition.signal_id == s.id,
        Transition.backfill.is_(False), Transition.at >= utcnow() - timedelta(days=days))).all()
    per = {today - timedelta(days=i): {"entered": 0, "exited": 0} for i in range(days)}
    for at, kind in rows:
        if at.date() in per:
            per[at.date()][kind] += 1
    top = max([max(v.values()) for v in per.values()] + [1])
    return [{"day": d, **v, "top": top} for d, v in sorted(per.items())]


def _names(ws: int, obj: str, ids: list[str]) -> dict[str, str]:
    from ..analytics.rollups import account_names, user_emails

    return (account_names if obj == "account" else user_emails)(db.session, ws, list(set(ids)))


@bp.post("/signals/<signal_id>/delete")
def delete_signal(signal_id: str):
    s = _signal(signal_id)
    if service.users_of(db.session, s):
        flash("Other signals or scores use this one: change them first.", "error")
        return redirect(url_for("dashboard.signal", signal_id=s.id))
    service.delete(db.session, s)
    db.session.commit()
    flash(f"Deleted {s.name!r}.", "success")
    return redirect(url_for("dashboard.signals"))


# --- panels of other pages ------------------------------------------------------------------

@bp.app_template_global("entity_signals")
def entity_signals(obj: str, entity_id: str) -> dict[str, Any]:
    """For the account and user pages: signals in now, entry/exit timeline, dimension changes."""
    ws = workspace_id()
    d = DimensionChange
    changes = db.session.scalars(sa.select(d).where(
        d.workspace_id == ws, d.object == obj, d.entity_id == entity_id)
        .order_by(d.changed_at.desc(), d.id.desc()).limit(30)).all()
    return {"current": service.signals_of(db.session, ws, entity_id, obj),
            "timeline": service.timeline(db.session, ws, entity_id, obj),
            "changes": changes}


@bp.app_template_global("signals_this_week")
def signals_this_week() -> list[dict[str, Any]]:
    """For the overview: entries into signals in the last 7 days (no back-fill), newest first."""
    ws = workspace_id()
    t = Transition
    rows = db.session.execute(
        sa.select(t.entity_id, t.at, t.values, Signal.id, Signal.name, Signal.object)
        .join(Signal, sa.and_(Signal.workspace_id == t.workspace_id, Signal.id == t.signal_id))
        .where(t.workspace_id == ws, t.kind == "entered", t.backfill.is_(False),
               t.at >= utcnow() - timedelta(days=7))
        .order_by(t.at.desc(), t.id.desc()).limit(12)).all()
    accounts = _names(ws, "account", [r[0] for r in rows if r[5] == "account"])
    users = _names(ws, "user", [r[0] for r in rows if r[5] == "user"])
    return [{"entity_id": r[0], "at": r[1], "values": r[2], "signal_id": r[3], "signal": r[4],
             "object": r[5], "name": (accounts if r[5] == "account" else users).get(r[0], r[0])}
            for r in rows]
