"""Readable ranges for breaking records down by a dimension: numbers into at most 10 ranges
with nice bounds ("$100k–250k"), dates by month, quarter or year, text as the top values.

The same buckets serve the events breakdown and the accounts list filter (`between`), so a
bar of the breakdown is a filter of the list. Plain pandas, no database.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .display import currency_of, format_number

MAX_BUCKETS = 10
NICE = (1, 2, 2.5, 5, 10)
RANGE = ".."  # a bucket as a filter value: "100000..250000" (low included, high not)


@dataclass(frozen=True)
class Bucket:
    label: str
    low: str  # the filter's bounds, as text (numbers plain, dates ISO)
    high: str

    @property
    def filter_value(self) -> str:
        return f"{self.low}{RANGE}{self.high}"


def nice(value: float, up: bool = False) -> float:
    """The nearest 1, 2, 2.5 or 5 x 10^k at or below a positive `value` (at or above: up)."""
    magnitude = 10 ** math.floor(math.log10(value))
    steps = [n * magnitude for n in NICE]
    if up:
        return float(min(s for s in steps if s >= value * (1 - 1e-12)))
    return float(max(s for s in steps if s <= value * (1 + 1e-12)))


def _ladder(low: float, high: float, rungs: tuple[float, ...]) -> list[float]:
    """Bounds from the rung at or below `low` to the first above `high` (1, 2.5, 5, 10...)."""
    values = [round(r * 10.0 ** k, 10) for k in range(math.floor(math.log10(low)),
                                                       math.floor(math.log10(high)) + 2)
              for r in rungs]
    start = max(v for v in values if v <= low)
    end = min(v for v in values if v > high)
    return [v for v in values if start <= v <= end]


def _small_integers(distinct: np.ndarray, max_buckets: int) -> bool:
    """Whole numbers within a short span (seats 1-5): each value reads better than a range."""
    return bool(np.all(distinct == np.round(distinct))) and distinct[-1] - distinct[0] < max_buckets


def number_edges(values: pd.Series, max_buckets: int = MAX_BUCKETS) -> list[float]:
    """Bucket bounds for numbers, low included and high not: one per value for a few whole
    numbers close together; a log ladder (1, 2.5, 5, 10...) when they span orders of magnitude (ARR,
    employees); else even nice steps (a score from 50 to 100 by tens)."""
    numbers = pd.to_numeric(values, errors="coerce").dropna()
    numbers = numbers[np.isfinite(numbers)].astype(float)
    if numbers.empty:
        return []
    distinct = np.unique(numbers)
    if len(distinct) <= max_buckets and _small_integers(distinct, max_buckets):
        step = float(np.min(np.diff(distinct))) if len(distinct) > 1 else 1.0
        return [*distinct.tolist(), float(distinct[-1]) + (1.0 if step >= 1 else step)]
    low, high = float(distinct[0]), float(distinct[-1])
    positive = distinct[distinct > 0]
    if low >= 0 and len(positive) and high / positive[0] >= 20:
        for rungs in ((1, 2.5, 5), (1,)):
            edges = _ladder(float(positive[0]), high, rungs)
            edges = ([0.0] if low == 0 else []) + edges
            if len(edges) - 1 <= max_buckets:
                return edges
        return edges[::2] if edges[-1] > high else edges[::2] + [edges[-1]]
    step = nice((high - low) / (max_buckets - 2), up=True)
    step = max(step, 1.0) if float(numbers.sum()).is_integer() else step
    first = math.floor(low / step) * step
    count = math.floor((high - first) / step) + 1
    return [round(first + i * step, 10) for i in range(count + 1)]


def number_buckets(values: pd.Series, display_format: str | None,
                   max_buckets: int = MAX_BUCKETS) -> list[Bucket]:
    """The ranges of a number dimension; a few distinct values are each their own bucket."""
    edges = number_edges(values, max_buckets)
    single = len(edges) - 1 == len(pd.to_numeric(values, errors="coerce").dropna().unique())
    return [Bucket(format_number(lo, display_format) if single
                   else range_label(lo, hi, display_format), _plain(lo), _plain(hi))
            for lo, hi in zip(edges, edges[1:])]


def _plain(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def range_label(low: float, high: float, display_format: str | None) -> str:
    """'$100k–250k', '10–20%', '1k–2.5k' (the unit once)."""
    start = format_number(low, display_format, compact=True)
    end = format_number(high, None, compact=True)
    if display_format == "percent":
        return f"{format_number(low, None, compact=True)}–{end}%"
    if currency_of(display_format) and high < 0:
        end = format_number(high, display_format, compact=True)
    return f"{start}–{end}"


def date_buckets(values: pd.Series, max_buckets: int = MAX_BUCKETS) -> list[Bucket]:
    """Months when the dates span at most `max_buckets` of them, else quarters, else years."""
    days = _days(values).dropna()
    if days.empty:
        return []
    first, last = days.min(), days.max()
    for freq, label in (("MS", "%b %Y"), ("QS", None), ("YS", "%Y")):
        starts = pd.date_range(first.to_period(freq[0]).start_time, last, freq=freq)
        if len(starts) <= max_buckets:
            break
    years = -(-len(starts) // max_buckets)  # spans of several years when even years are many
    if freq == "YS" and years > 1:
        starts = starts[::years]
    ends = list(starts[1:]) + [starts[-1] + pd.DateOffset(years=years) if freq == "YS" else
                               starts[-1] + pd.tseries.frequencies.to_offset(freq)]
    return [Bucket(_date_label(s, e, freq, label), s.strftime("%Y-%m-%d"),
                   e.strftime("%Y-%m-%d")) for s, e in zip(starts, ends)]


def _days(values: pd.Series) -> pd.Series:
    """Dates and times as naive UTC timestamps (NaT where a value is not one)."""
    return pd.to_datetime(values, errors="coerce", utc=True, format="mixed").dt.tz_convert(None)


def _date_label(start: pd.Timestamp, end: pd.Timestamp, freq: str, label: str | None) -> str:
    if freq == "QS":
        return f"Q{start.quarter} {start.year}"
    if freq == "YS" and end.year - start.year > 1:
        return f"{start.year}–{end.year - 1}"
    return start.strftime(label)


def buckets_for(values: pd.Series, typ: str, display_format: str | None) -> list[Bucket] | None:
    """The ranges of a number or date dimension (None for text: it is broken down by value)."""
    if typ == "NUMBER":
        return number_buckets(values, display_format)
    if typ in ("DATE", "DATETIME"):
        return date_buckets(values)
    return None


def assign(values: pd.Series, typ: str, buckets: list[Bucket]) -> pd.Series:
    """Each value's bucket label (NaN where it has none: not set, or not a number/date)."""
    if not buckets:
        return pd.Series(np.nan, index=values.index, dtype=object)
    if typ == "NUMBER":
        keys = pd.to_numeric(values, errors="coerce")
        bounds = [float(b.low) for b in buckets] + [float(buckets[-1].high)]
    else:
        keys = _days(values)
        bounds = [pd.Timestamp(b.low) for b in buckets] + [pd.Timestamp(buckets[-1].high)]
    labels = pd.cut(keys, bins=bounds, labels=[b.label for b in buckets], right=False,
                    ordered=True)
    return labels.astype(object)
