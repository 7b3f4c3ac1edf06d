"""Events: every event name over time; one event's trend, breakdown and latest properties."""
from __future__ import annotations

from flask import render_template, request

from ..analytics import charts, rollups
from ..ingest import fields as catalog_fields
from ..extensions import db
from ..analytics.listing import usable_key
from ..models import Field
from .blueprint import bp
from .common import workspace_id

PREFERRED_BREAKDOWNS = ["plan", "industry", "region", "owner", "stage", "country"]
MAX_PROPERTY_COLUMNS = 8


@bp.get("/events")
def events():
    """The event catalogue with counts; ?event= picks one, ?by= an account dimension."""
    ws = workspace_id()
    frame = rollups.event_days(db.session, ws, days=90)
    summary = rollups.event_summary(frame)
    names = list(summary.index)
    selected = request.args.get("event") or (names[0] if names else None)
    context = {"summary": summary, "selected": selected,
               "all_chart": charts.stacked_bars(rollups.by_day(frame, 90))}
    if selected is not None:
        context.update(_selected(ws, frame, selected))
    return render_template("events/index.html", **context)


def _selected(ws: int, frame, name: str) -> dict:
    """The chosen event: daily trend, breakdown by an account dimension, latest properties."""
    fields = _breakdown_dimensions(ws)
    dimensions = {key: f.label for key, f in fields.items()}
    by = request.args.get("by")
    if by not in dimensions:
        preferred = [d for d in PREFERRED_BREAKDOWNS if d in dimensions]
        by = preferred[0] if preferred else next(iter(dimensions), None)
    daily = rollups.by_day(frame[frame["event"] == name], 90)
    series = daily[name] if name in daily.columns else daily.sum(axis=1)
    breakdown = rollups.event_breakdown(db.session, ws, name, by, fields[by].type,
                                        fields[by].display_format) if by else None
    latest = rollups.latest_events(db.session, ws, 20, event=name)
    return {
        "trend_chart": charts.bars(series, name, y_title="Events"),
        "breakdown": breakdown, "by": by, "dimensions": dimensions,
        "breakdown_chart": charts.horizontal_bars(breakdown, "value", "events", "events",
                                                  dimensions[by])
        if breakdown is not None else None,
        "ranged": by is not None and fields[by].type in ("NUMBER", "DATE", "DATETIME"),
        "latest": latest, "property_keys": _property_keys(latest),
        "names": {"accounts": rollups.account_names(db.session, ws, {e.account_id for e in latest
                                                                     if e.account_id}),
                  "users": rollups.user_emails(db.session, ws, {e.user_id for e in latest
                                                                if e.user_id})},
        "known": name in frame["event"].values,
    }


def _breakdown_dimensions(ws: int) -> dict[str, Field]:
    """Account dimensions to break down by (key -> field), text-like fields first; numbers and
    dates are broken down in ranges."""
    catalog = catalog_fields.load_catalog(db.session, ws, "account", include_hidden=False)
    usable = [f for f in catalog.values() if f.key not in ("account_id", "name")
              and usable_key(f.key) and f.type not in ("OBJECT", "ARRAY")]
    usable.sort(key=lambda f: (f.type != "STRING", f.label.lower()))
    return {f.key: f for f in usable}


def _property_keys(events: list) -> list[str]:
    """The property names seen in these events, most frequent first (a few columns at most)."""
    counts: dict[str, int] = {}
    for event in events:
        for key in (event.properties or {}):
            counts[key] = counts.get(key, 0) + 1
    return sorted(counts, key=lambda k: (-counts[k], k))[:MAX_PROPERTY_COLUMNS]
