"""pandas frames -> plotly figures, as JSON-ready dicts for the page. No database, no Flask.

The figures are written in plotly's figure schema directly rather than through
plotly.graph_objects, whose validation costs more than the SQL behind a small page; the tests
load every figure into `plotly.graph_objects.Figure` to prove it valid. Only plain scatter and
bar traces: they render under a `script-src 'self'` policy (no eval).
"""
from __future__ import annotations

from typing import Any

import pandas as pd

PALETTE = ["#4f46e5", "#0ea5e9", "#14b8a6", "#f59e0b", "#f43f5e", "#8b5cf6", "#84cc16",
           "#64748b", "#ec4899", "#22c55e"]
GRID = "#eef0f3"
AXIS_TEXT = "#667085"


def _layout(**extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "margin": {"l": 44, "r": 12, "t": 8, "b": 36},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "hovermode": "x unified",
        "showlegend": True,
        "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom",
                   "font": {"size": 12}},
        "xaxis": {"gridcolor": GRID, "linecolor": "#d0d5dd", "tickfont": {"color": AXIS_TEXT},
                  "fixedrange": True},
        "yaxis": {"gridcolor": GRID, "zeroline": False, "tickfont": {"color": AXIS_TEXT},
                  "rangemode": "tozero", "fixedrange": True, "tickformat": ",d"},
        "colorway": PALETTE,
    }
    layout.update(extra)
    return layout


def _figure(traces: list[dict[str, Any]], layout: dict[str, Any]) -> dict[str, Any]:
    return {"data": traces, "layout": layout}


def _ints(values: Any) -> list[int]:
    return [int(v) for v in values]


def _dates(index: pd.Index) -> list[str]:
    return [d.strftime("%Y-%m-%d") for d in pd.to_datetime(index)]


def lines(frame: pd.DataFrame, names: dict[str, str], fill_first: bool = False) -> dict | None:
    """One line per column (daily series); None when every value is zero."""
    if frame.empty or not frame.to_numpy().any():
        return None
    x = _dates(frame.index)
    traces = []
    for i, (column, label) in enumerate(names.items()):
        trace = {"type": "scatter", "mode": "lines", "x": x, "y": _ints(frame[column]),
                 "name": label, "hovertemplate": "%{y:,d}",
                 "line": {"width": 2.4, "shape": "spline", "smoothing": 0.4, "color": PALETTE[i]}}
        if fill_first and i == 0:
            trace.update(fill="tozeroy", fillcolor="rgba(79,70,229,0.08)")
        traces.append(trace)
    layout = _layout(margin={"l": 40, "r": 12, "t": 36, "b": 32})
    layout["xaxis"].update(type="date", tickformat="%b %-d")
    return _figure(traces, layout)


def stacked_bars(frame: pd.DataFrame, max_series: int = 8) -> dict | None:
    """Daily counts stacked by column (event names); small series folded into "other"."""
    if frame.empty or not frame.to_numpy().any():
        return None
    frame = _fold(frame, max_series)
    x = _dates(frame.index)
    traces = [{"type": "bar", "x": x, "y": _ints(frame[column]), "name": _escape(str(column)),
               "marker": {"color": PALETTE[i % len(PALETTE)], "line": {"width": 0}},
               "hovertemplate": "%{y:,d}"} for i, column in enumerate(frame.columns)]
    layout = _layout(barmode="stack", bargap=0.25, margin={"l": 44, "r": 12, "t": 36, "b": 32})
    layout["xaxis"].update(type="date", tickformat="%b %-d")
    return _figure(traces, layout)


def _fold(frame: pd.DataFrame, keep: int) -> pd.DataFrame:
    if len(frame.columns) <= keep:
        return frame
    head = frame.iloc[:, :keep - 1].copy()
    head["other events"] = frame.iloc[:, keep - 1:].sum(axis=1)
    return head


def bars(series: pd.Series, label: str, weekly: bool = False) -> dict | None:
    """One bar per day (or week) of a single series."""
    if series.empty or not series.to_numpy().any():
        return None
    hover = "Week of %{x|%b %-d}: %{y:,d}" if weekly else "%{x|%b %-d}: %{y:,d}"
    trace = {"type": "bar", "x": _dates(series.index), "y": _ints(series), "name": _escape(label),
             "marker": {"color": PALETTE[0], "line": {"width": 0}},
             "hovertemplate": hover + f"<extra>{_escape(label)}</extra>"}
    layout = _layout(showlegend=False, bargap=0.3, hovermode="closest")
    layout["xaxis"].update(type="date", tickformat="%b %-d")
    return _figure([trace], layout)


def horizontal_bars(frame: pd.DataFrame, label_column: str, value_column: str,
                    value_label: str) -> dict | None:
    """A ranked breakdown (largest on top)."""
    if frame.empty or not frame[value_column].any():
        return None
    ordered = frame.iloc[::-1]
    trace = {"type": "bar", "orientation": "h", "x": _ints(ordered[value_column]),
             "y": [_escape(_short(str(v))) for v in ordered[label_column]],
             "marker": {"color": PALETTE[0], "line": {"width": 0}},
             "hovertemplate": "%{y}: %{x:,d} " + _escape(value_label) + "<extra></extra>"}
    layout = _layout(showlegend=False, hovermode="closest", bargap=0.35,
                     margin={"l": 12, "r": 24, "t": 8, "b": 28})
    layout["yaxis"].update(automargin=True, type="category", gridcolor="rgba(0,0,0,0)")
    del layout["yaxis"]["tickformat"]  # category labels, not numbers
    layout["xaxis"].update(tickformat=",d", rangemode="tozero")
    return _figure([trace], layout)


def _short(text: str, limit: int = 32) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escape(text: str) -> str:
    """Plotly renders a few HTML tags in labels; show data as text, never as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
