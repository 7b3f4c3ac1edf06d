"""charts.py: every figure is valid plotly (checked by plotly.graph_objects), shows the data
it was given, escapes labels, and is None when there is nothing to draw."""
from __future__ import annotations

import json

import pandas as pd
import plotly.graph_objects as go

from correlated.analytics import charts

DAYS = pd.date_range("2026-03-01", periods=4, freq="D")


def valid(figure: dict) -> go.Figure:
    json.dumps(figure)  # plain JSON: no numpy or pandas values left
    return go.Figure(figure)  # raises on any property plotly does not know


def test_lines():
    frame = pd.DataFrame({"accounts": [1, 2, 0, 3], "users": [4, 5, 0, 9]}, index=DAYS)
    fig = valid(charts.lines(frame, {"accounts": "Active accounts", "users": "Active users"}))
    assert [t.name for t in fig.data] == ["Active accounts", "Active users"]
    assert list(fig.data[1].y) == [4, 5, 0, 9]
    assert fig.data[0].x[0] == "2026-03-01"


def test_stacked_bars_fold_small_series_and_escape_names():
    frame = pd.DataFrame({f"e{i}": [i, i, i, i] for i in range(10)}, index=DAYS)
    frame["<b>x</b>"] = [1, 1, 1, 1]
    fig = valid(charts.stacked_bars(frame, max_series=4))
    assert fig.layout.barmode == "stack"
    assert [t.name for t in fig.data] == ["e0", "e1", "e2", "other events"]
    assert list(fig.data[-1].y) == [sum(range(3, 10)) + 1] * 4
    named = valid(charts.stacked_bars(frame[["<b>x</b>"]]))
    assert named.data[0].name == "&lt;b&gt;x&lt;/b&gt;"


def test_bars_and_horizontal_bars():
    fig = valid(charts.bars(pd.Series([0, 3, 2, 5], index=DAYS), "Active users", weekly=True))
    assert list(fig.data[0].y) == [0, 3, 2, 5] and "Week of" in fig.data[0].hovertemplate
    breakdown = pd.DataFrame({"value": ["pro", "<script>"], "events": [10, 4]})
    fig = valid(charts.horizontal_bars(breakdown, "value", "events", "events"))
    assert list(fig.data[0].y) == ["&lt;script&gt;", "pro"]  # largest on top
    assert list(fig.data[0].x) == [4, 10]


def test_nothing_to_draw():
    zeros = pd.DataFrame({"a": [0, 0, 0, 0]}, index=DAYS)
    assert charts.lines(zeros, {"a": "A"}) is None
    assert charts.stacked_bars(pd.DataFrame()) is None
    assert charts.bars(pd.Series([0, 0], index=DAYS[:2]), "x") is None
    assert charts.horizontal_bars(pd.DataFrame({"v": [], "n": []}), "v", "n", "n") is None
