"""pandas frames -> plotly figures, as JSON-ready dicts for the page. No database, no Flask.

The figures are written in plotly's figure schema directly rather than through
plotly.graph_objects, whose validation costs more than the SQL behind a small page; the tests
load every figure into `plotly.graph_objects.Figure` to prove it valid. Only plain scatter and
bar traces: they render under a `script-src 'self'` policy (no eval).

Every chart has titled axes, formatted hovers and a legend only when it has several series.
Count axes tick at whole numbers. Period charts end at the current, unfinished period: its bar
is hatched and lighter (its line dotted) and a note says so, so it never reads as a collapse.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

PALETTE = ["#4f46e5", "#0ea5e9", "#14b8a6", "#f59e0b", "#f43f5e", "#8b5cf6", "#84cc16",
           "#64748b", "#ec4899", "#22c55e"]
GRID = "#eef0f3"
AXIS_TEXT = "#667085"
TITLE_FONT = {"size": 11.5, "color": AXIS_TEXT}
PARTIAL_OPACITY = 0.45
DAY_HOVER = "%a, %b %-d, %Y"
TODAY = "today so far"
THIS_WEEK = "this week so far"


def _axis(title: str, **extra: Any) -> dict[str, Any]:
    axis = {"gridcolor": GRID, "linecolor": "#d0d5dd", "tickfont": {"color": AXIS_TEXT},
            "fixedrange": True, "title": {"text": title, "font": TITLE_FONT, "standoff": 6}}
    axis.update(extra)
    return axis


def count_axis(title: str, top: float) -> dict[str, Any]:
    """A y (or x) axis of counts: from zero, thousands separators, whole-number ticks only."""
    axis = _axis(title, zeroline=False, rangemode="tozero", tickformat=",d")
    if top <= 5:  # plotly would step by 0.5 and print 0, 1, 1, 2, 2
        axis.update(tick0=0, dtick=1, range=[0, max(top, 1) * 1.08])
    elif top < 10:
        axis.update(tick0=0, dtick=2)
    return axis


def _date_axis(title: str, hover: str = DAY_HOVER) -> dict[str, Any]:
    return _axis(title, type="date", tickformat="%b %-d", hoverformat=hover)


def _layout(traces: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    shown = [t for t in traces if t.get("showlegend", True)]
    layout: dict[str, Any] = {
        "margin": {"l": 56, "r": 12, "t": 36 if len(shown) > 1 else 22, "b": 44},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "hovermode": "x unified",
        "showlegend": len(shown) > 1,
        "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom",
                   "font": {"size": 12}},
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


def _note(x: str, text: str, yref: str = "paper", y: float = 1.0) -> dict[str, Any]:
    """The words beside the unfinished period (a chart says why its last bar is short)."""
    return {"x": x, "xref": "x", "y": y, "yref": yref, "yanchor": "bottom", "xanchor": "right",
            "text": text, "showarrow": False, "font": {"size": 10.5, "color": AXIS_TEXT}}


def _partial_marker(color: str, points: int) -> dict[str, Any]:
    """A bar colour whose last bar (the unfinished period) is lighter and hatched."""
    return {"color": color, "line": {"width": 0},
            "opacity": [1.0] * (points - 1) + [PARTIAL_OPACITY],
            "pattern": {"shape": [""] * (points - 1) + ["/"], "fgcolor": "#ffffff",
                        "size": 5, "solidity": 0.35}}


def small_multiples(frame: pd.DataFrame, names: dict[str, str], partial: str = TODAY) -> dict | None:
    """One small line chart per column, stacked, each on its own axis (so a series of 50 never
    flattens beside one of 300); the last day is dotted as unfinished. None when all zero."""
    if frame.empty or not frame.to_numpy().any():
        return None
    x = _dates(frame.index)
    gap = 0.16
    height = (1 - gap * (len(names) - 1)) / len(names)
    traces, layout = [], _layout([], hovermode="x unified", showlegend=False,
                                 margin={"l": 56, "r": 12, "t": 22, "b": 44})
    annotations = []
    for i, (column, label) in enumerate(names.items()):
        axis = "" if i == 0 else str(i + 1)
        values = _ints(frame[column])
        color = PALETTE[i % len(PALETTE)]
        common = {"type": "scatter", "mode": "lines", "xaxis": "x", "yaxis": f"y{axis}",
                  "name": label, "hovertemplate": "%{y:,d}"}
        traces.append({**common, "x": x[:-1], "y": values[:-1], "fill": "tozeroy",
                       "fillcolor": _tint(color), "line": {"width": 2.2, "color": color}})
        traces.append({**common, "x": x[-2:], "y": values[-2:], "showlegend": False,
                       "hoverinfo": "skip", "line": {"width": 2.2, "color": color, "dash": "dot"}})
        traces.append({**common, "mode": "markers", "x": x[-1:], "y": values[-1:],
                       "showlegend": False, "hovertemplate": "%{y:,d} (" + partial + ")",
                       "marker": {"color": "#ffffff", "size": 6,
                                  "line": {"color": color, "width": 2}}})
        top = 1 - i * (height + gap)
        layout[f"yaxis{axis}"] = {**count_axis(label, max(values)),
                                  "domain": [top - height, top]}
        annotations.append(_note(x[-1], partial, yref=f"y{axis} domain", y=1.0))
    layout["xaxis"] = {**_date_axis("Day"), "anchor": f"y{len(names)}"}
    layout["annotations"] = annotations[:1]  # one note is enough: the days are shared
    return _figure(traces, layout)


def _tint(hex_color: str, alpha: float = 0.08) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def stacked_bars(frame: pd.DataFrame, max_series: int = 8, y_title: str = "Events",
                 partial: str = TODAY) -> dict | None:
    """Daily counts stacked by column (event names); small series folded into "other"; the
    last day is unfinished."""
    if frame.empty or not frame.to_numpy().any():
        return None
    frame = _fold(frame, max_series)
    x = _dates(frame.index)
    traces = [{"type": "bar", "x": x, "y": _ints(frame[column]), "name": _escape(str(column)),
               "marker": _partial_marker(PALETTE[i % len(PALETTE)], len(x)),
               "hovertemplate": "%{y:,d}"} for i, column in enumerate(frame.columns)]
    if len(traces) == 1:
        traces[0]["hovertemplate"] = "%{y:,d} " + _escape(y_title.lower()) + "<extra></extra>"
    layout = _layout(traces, barmode="stack", bargap=0.25,
                     xaxis=_date_axis("Day"),
                     yaxis=count_axis(y_title, int(frame.sum(axis=1).max())),
                     annotations=[_note(x[-1], partial)])
    return _figure(traces, layout)


def _fold(frame: pd.DataFrame, keep: int) -> pd.DataFrame:
    if len(frame.columns) <= keep:
        return frame
    head = frame.iloc[:, :keep - 1].copy()
    head["other events"] = frame.iloc[:, keep - 1:].sum(axis=1)
    return head


def bars(series: pd.Series, label: str, weekly: bool = False, y_title: str | None = None) -> dict | None:
    """One bar per day (or week) of a single series; the last period is unfinished."""
    if series.empty or not series.to_numpy().any():
        return None
    x = _dates(series.index)
    when = "Week of %{x|%b %-d, %Y}" if weekly else "%{x|" + DAY_HOVER + "}"
    trace = {"type": "bar", "x": x, "y": _ints(series), "name": _escape(label),
             "marker": _partial_marker(PALETTE[0], len(x)),
             "hovertemplate": when + ": %{y:,d}<extra>" + _escape(label) + "</extra>"}
    layout = _layout([trace], bargap=0.3, hovermode="closest",
                     xaxis=_date_axis("Week starting" if weekly else "Day"),
                     yaxis=count_axis(y_title or label, int(series.max())),
                     annotations=[_note(x[-1], THIS_WEEK if weekly else TODAY)])
    return _figure([trace], layout)


def horizontal_bars(frame: pd.DataFrame, label_column: str, value_column: str,
                    value_label: str, category_title: str = "") -> dict | None:
    """A ranked breakdown (largest on top, unless the rows are ranges kept in their order)."""
    if frame.empty or not frame[value_column].any():
        return None
    ordered = frame.iloc[::-1]
    trace = {"type": "bar", "orientation": "h", "x": _ints(ordered[value_column]),
             "y": [_escape(_short(str(v))) for v in ordered[label_column]],
             "marker": {"color": PALETTE[0], "line": {"width": 0}},
             "hovertemplate": "%{y}: %{x:,d} " + _escape(value_label) + "<extra></extra>"}
    layout = _layout([trace], hovermode="closest", bargap=0.35,
                     margin={"l": 12, "r": 24, "t": 8, "b": 44},
                     xaxis=count_axis(value_label.capitalize(), int(frame[value_column].max())),
                     yaxis=_axis(_escape(category_title), automargin=True, type="category",
                                 gridcolor="rgba(0,0,0,0)"))
    return _figure([trace], layout)


def _short(text: str, limit: int = 32) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escape(text: str) -> str:
    """Plotly renders a few HTML tags in labels; show data as text, never as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
