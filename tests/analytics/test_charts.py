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


def test_small_multiples_give_each_series_its_own_axis():
    frame = pd.DataFrame({"accounts": [1, 2, 0, 3], "users": [40, 50, 0, 90]}, index=DAYS)
    fig = valid(charts.small_multiples(frame, {"accounts": "Active accounts",
                                               "users": "Active users"}))
    solid = [t for t in fig.data if t.mode == "lines" and t.line.dash is None]
    assert [t.name for t in solid] == ["Active accounts", "Active users"]
    assert [t.yaxis for t in solid] == ["y", "y2"]  # separate axes: 3 never flattens beside 90
    assert list(solid[1].y) == [40, 50, 0]  # the unfinished day is drawn apart, dotted
    dotted = [t for t in fig.data if t.line.dash == "dot"]
    assert [list(t.x) for t in dotted] == [["2026-03-03", "2026-03-04"]] * 2
    assert fig.layout.yaxis.title.text == "Active accounts"
    assert fig.layout.yaxis2.title.text == "Active users"
    assert fig.layout.yaxis.domain[0] > fig.layout.yaxis2.domain[1]
    assert "so far" in fig.layout.annotations[0].text


def test_count_axes_tick_at_whole_numbers_only():
    small = valid(charts.bars(pd.Series([0, 1, 2, 3], index=DAYS), "Active users"))
    assert small.layout.yaxis.dtick == 1 and small.layout.yaxis.tick0 == 0
    assert small.layout.yaxis.tickformat == ",d"
    medium = valid(charts.stacked_bars(pd.DataFrame({"a": [4, 0, 1, 3], "b": [3, 0, 0, 1]},
                                                    index=DAYS)))
    assert medium.layout.yaxis.dtick == 2  # stacked: the axis spans the tallest day (7)
    big = valid(charts.bars(pd.Series([0, 100, 250, 300], index=DAYS), "Events"))
    assert big.layout.yaxis.dtick is None and big.layout.yaxis.tickformat == ",d"


def test_the_unfinished_period_is_marked_on_every_period_chart():
    weekly = valid(charts.bars(pd.Series([33, 30, 35, 15], index=DAYS), "Active users",
                               weekly=True))
    marker = weekly.data[0].marker
    assert list(marker.opacity) == [1, 1, 1, charts.PARTIAL_OPACITY]
    assert list(marker.pattern.shape) == ["", "", "", "/"]
    assert weekly.layout.annotations[0].text == "this week so far"
    assert weekly.layout.annotations[0].x == "2026-03-04"
    daily = valid(charts.stacked_bars(pd.DataFrame({"a": [1, 2, 3, 1]}, index=DAYS)))
    assert list(daily.data[0].marker.pattern.shape)[-1] == "/"
    assert daily.layout.annotations[0].text == "today so far"


def test_axis_titles_hovers_and_legends_only_for_several_series():
    one = valid(charts.stacked_bars(pd.DataFrame({"sign_in": [1, 2000, 3, 1]}, index=DAYS)))
    assert one.layout.showlegend is False
    assert one.layout.xaxis.title.text == "Day" and one.layout.yaxis.title.text == "Events"
    assert one.layout.xaxis.hoverformat == charts.DAY_HOVER  # "Tue, Mar 3, 2026"
    assert ":,d" in one.data[0].hovertemplate  # 2,000, not 2000
    two = valid(charts.stacked_bars(pd.DataFrame({"a": [1, 2, 3, 1], "b": [1, 1, 1, 1]},
                                                 index=DAYS)))
    assert two.layout.showlegend is True
    weekly = valid(charts.bars(pd.Series([3, 3, 3, 1], index=DAYS), "Active users", weekly=True))
    assert weekly.layout.xaxis.title.text == "Week starting"
    assert weekly.data[0].hovertemplate.startswith("Week of %{x|%b %-d, %Y}: %{y:,d}")
    ranked = valid(charts.horizontal_bars(pd.DataFrame({"v": ["$0–10k"], "n": [1200]}), "v", "n",
                                          "events", "ARR"))
    assert ranked.layout.yaxis.title.text == "ARR"
    assert ranked.layout.xaxis.title.text == "Events"
    assert ranked.layout.showlegend is False


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
    assert charts.small_multiples(zeros, {"a": "A"}) is None
    assert charts.stacked_bars(pd.DataFrame()) is None
    assert charts.bars(pd.Series([0, 0], index=DAYS[:2]), "x") is None
    assert charts.horizontal_bars(pd.DataFrame({"v": [], "n": []}), "v", "n", "n") is None
