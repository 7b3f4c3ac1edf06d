"""Jinja filters: numbers, dates, relative times and dimension values, formatted for people."""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

import pandas as pd
from markupsafe import Markup, escape

from ..analytics.display import format_number
from .blueprint import bp


def _aware(value: Any) -> datetime | None:
    if value is None or (not isinstance(value, (str, date)) and pd.isna(value)):
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


@bp.app_template_filter("number")
def number(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "—"
    return f"{value:,.{digits}f}"


@bp.app_template_filter("compact")
def compact(value: Any) -> str:
    """12,345 -> 12.3k; for KPI tiles."""
    if value is None:
        return "—"
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e4, "k")):
        if abs(value) >= size:
            return f"{value / size:.1f}{suffix}".replace(".0" + suffix, suffix)
    return f"{value:,.0f}"


@bp.app_template_filter("ago")
def ago(value: Any) -> str:
    """'3 hours ago', 'yesterday', '12 days ago', or a date beyond two months."""
    moment = _aware(value)
    if moment is None:
        return "never"
    seconds = (datetime.now(timezone.utc) - moment).total_seconds()
    if seconds < 60:
        return "just now"
    for limit, size, unit in ((3600, 60, "min"), (86400, 3600, "h")):
        if seconds < limit:
            return f"{int(seconds // size)} {unit} ago"
    days = int(seconds // 86400)
    if days == 1:
        return "yesterday"
    if days < 60:
        return f"{days} days ago"
    return moment.strftime("%b %-d, %Y")


@bp.app_template_filter("when")
def when(value: Any) -> str:
    """An exact UTC time: 'Mar 4, 2026 14:05 UTC'."""
    moment = _aware(value)
    return moment.astimezone(timezone.utc).strftime("%b %-d, %Y %H:%M UTC") if moment else "—"


@bp.app_template_filter("day")
def day(value: Any) -> str:
    moment = _aware(value)
    return moment.strftime("%b %-d, %Y") if moment else "—"


@bp.app_template_filter("dimension")
def dimension(value: Any, typ: str = "STRING", display_format: str | None = None) -> str:
    """A dimension value as text (autoescaped by Jinja afterwards), numbers in the field's
    display format."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, (int, float)) and display_format:
        return format_number(value, display_format)
    if isinstance(value, (int, float)) and typ in ("NUMBER", "STRING", "ENUM"):
        return f"{value:,}" if isinstance(value, int) or value != int(value) else f"{int(value):,}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    if typ == "DATETIME":
        return when(value)
    if typ == "DATE" and isinstance(value, str) and len(value) == 10:
        return day(value)
    return str(value)


@bp.app_template_filter("props")
def props(value: Any) -> str:
    """Event properties on one line: key=value, ..."""
    if not value:
        return ""
    return ", ".join(f"{k}={dimension(v)}" for k, v in value.items())


@bp.app_template_filter("plural")
def plural(count: Any, singular: str, many: str | None = None) -> str:
    """'1 field', '3 fields', '1,200 accounts' (the count formatted, the noun agreeing)."""
    word = singular if count == 1 else (many or singular + "s")
    return f"{number(count)} {word}"


@dataclass(frozen=True)
class Change:
    """A change figure as every page shows it: kind (none, new, up, down, flat) and its text."""

    kind: str
    text: str
    title: str = ""


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@bp.app_template_global("change_figure")
def change_figure(current: Any = None, previous: Any = None, pct: Any = None) -> Change:
    """The one rule for change figures: nothing in either period is no figure; nothing in the
    previous period (or a percent that could not be computed) is "new"; otherwise the percent,
    rounded, where a change that rounds to 0 reads "0%"."""
    if current is not None or previous is not None:
        if not current and not previous:
            return Change("none", "—", "No activity in either period")
        pct = None if not previous else (current - previous) * 100.0 / previous
    if _missing(pct):
        return Change("new", "new", "No activity in the previous period")
    rounded = round(pct)
    if rounded > 0:
        return Change("up", f"▲ {rounded:.0f}%")
    if rounded < 0:
        return Change("down", f"▼ {-rounded:.0f}%")
    return Change("flat", "0%")


@bp.app_template_filter("url_breaks")
def url_breaks(url: str) -> Markup:
    """A URL that wraps only after a "/" (and between query parameters: before "?", after "="
    and "&"), never inside a word: each part unbreakable, a <wbr> between (the copied text is
    the URL itself)."""
    parts = [p for p in re.split(r"(?<=/)|(?=\?)|(?<=[=&])", str(url)) if p]
    return Markup("<wbr>".join(f'<span class="nobreak">{escape(part)}</span>' for part in parts))
