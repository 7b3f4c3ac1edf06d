"""Score figures as plotly dicts (plain bar and scatter traces, as analytics/charts.py): the
distribution of a model, an entity's breakdown bar ("why") and its history with tier bands."""
from __future__ import annotations

from typing import Any

from ..analytics.charts import PALETTE, _axis, _layout, count_axis

TIER_COLORS = ["#22c55e", "#84cc16", "#f59e0b", "#f97316", "#f43f5e", "#8b5cf6", "#64748b"]


def distribution(preview: dict[str, Any]) -> dict[str, Any]:
    """The preview's buckets as a histogram of bars (a bar per ten points)."""
    buckets = preview["buckets"]
    trace = {"type": "bar", "name": "Entities", "marker": {"color": PALETTE[0]},
             "x": [f"{b['from']}–{b['to']}" for b in buckets], "y": [b["count"] for b in buckets],
             "hovertemplate": "score %{x}: %{y}<extra></extra>"}
    top = max([b["count"] for b in buckets] + [1])
    return {"data": [trace], "layout": _layout([trace], xaxis=_axis("Score"),
                                               yaxis=count_axis("Entities", top),
                                               hovermode="closest", bargap=0.08)}


def breakdown(explained: dict[str, Any]) -> dict[str, Any]:
    """One horizontal bar, a segment per input: its points, adding up to the score."""
    traces = []
    for i, part in enumerate(explained["contributions"]):
        note = " (missing: counted 0)" if part["missing"] else ""
        traces.append({"type": "bar", "orientation": "h", "name": _escape(part["label"]),
                       "x": [part["points"]], "y": [_escape(explained["name"])],
                       "marker": {"color": PALETTE[i % len(PALETTE)]},
                       "hovertemplate": f"{_escape(part['label'])}: %{{x:.1f}} points{note}"
                                        "<extra></extra>"})
    layout = _layout(traces, barmode="stack", hovermode="closest",
                     xaxis=_axis("Points", range=[0, 100], dtick=10),
                     yaxis={"visible": False, "fixedrange": True},
                     margin={"l": 12, "r": 12, "t": 40, "b": 40})
    layout["showlegend"] = True
    return {"data": traces, "layout": layout}


def history(points: list[dict[str, Any]], tiers: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The score per day, over its tiers drawn as bands (highest first)."""
    if not points:
        return None
    trace = {"type": "scatter", "mode": "lines+markers", "name": "Score",
             "x": [p["day"] for p in points], "y": [p["score"] for p in points],
             "text": [p["tier"] or "" for p in points], "line": {"color": PALETTE[0]},
             "hovertemplate": "%{x|%b %-d}: %{y:.1f} %{text}<extra></extra>"}
    bands, upper = [], 100.0
    for i, tier in enumerate(sorted(tiers, key=lambda t: -t["min"])):
        bands.append({"type": "rect", "xref": "paper", "x0": 0, "x1": 1, "yref": "y",
                      "y0": tier["min"], "y1": upper, "line": {"width": 0}, "layer": "below",
                      "fillcolor": TIER_COLORS[i % len(TIER_COLORS)], "opacity": 0.10})
        upper = tier["min"]
    notes = [{"xref": "paper", "x": 1, "xanchor": "right", "y": t["min"], "yanchor": "bottom",
              "text": _escape(t["name"]), "showarrow": False, "font": {"size": 10}}
             for t in tiers]
    layout = _layout([trace], xaxis=_axis("Day", type="date", tickformat="%b %-d"),
                     yaxis=_axis("Score", range=[0, 100]), shapes=bands, annotations=notes,
                     hovermode="closest")
    return {"data": [trace], "layout": layout}


def _escape(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
