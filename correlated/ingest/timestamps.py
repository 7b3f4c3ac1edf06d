"""The one timestamp parser: what every surface accepts as a point in time, and what it refuses.

Reverse-ETL tools pass warehouse values through as the warehouse renders them, so besides ISO 8601
and epoch numbers this reads the renderings Snowflake, BigQuery, Redshift and PostgreSQL produce
(`2024-01-15 10:32:00.000 +0000`, `2024-01-15 10:32:00.000000 UTC`, `2024-01-15 10:32:00+00`) and
BigQuery's `{"value": "..."}` wrapper. Forms that can be read more than one way (`01/02/2024`,
zone abbreviations such as `CST` or `IST`) are refused with what to send instead.
"""
from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Any

EXPECTED = "expected ISO 8601 or epoch seconds/milliseconds"
# A date, optionally a time, optionally a zone: Z, UTC/GMT or a numeric offset, with or without
# a space before it (Snowflake and BigQuery put one there; ISO 8601 does not).
WAREHOUSE_RE = re.compile(
    r"^(?P<moment>\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?)?)"
    r"(?:\s?(?P<zone>[Zz]|UTC|GMT|utc|gmt|[+-]\d{2}(?::?\d{2})?))?$")
DATETIME_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}([.,]\d+)?)?"
    r"(\s?([Zz]|UTC|GMT|utc|gmt|[+-]\d{2}(:?\d{2})?))?$")
ABBREVIATION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ][\d:.,]+\s*(?P<zone>[A-Za-z]{2,5})$")
SLASHED_RE = re.compile(r"^\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b")
UTC_NAMES = {"z", "utc", "gmt"}


class Invalid(ValueError):
    """A value that does not fit; the message is what the person who sent it should fix."""


def unwrap(value: Any) -> Any:
    """BigQuery's client renders DATE, DATETIME and TIMESTAMP values as `{"value": "..."}`."""
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get("value"), str):
        return value["value"]
    return value


def looks_like_datetime(value: Any) -> bool:
    """Text shaped like a date and time (what a new custom field's type is inferred from)."""
    return isinstance(value, str) and DATETIME_RE.match(value.strip()) is not None


def parse_timestamp(value: Any) -> datetime:
    """ISO 8601 or a warehouse rendering (naive means UTC), or epoch seconds/milliseconds ->
    aware UTC datetime; Invalid naming the problem otherwise."""
    value = unwrap(value)
    if isinstance(value, bool) or value is None:
        raise Invalid(f"{EXPECTED}, got {describe(value)}")
    if isinstance(value, str):
        # "2024-01-15...": four digits and a dash are no number (the usual case, no float())
        if not (value[:4].isdigit() and value[4:5] == "-") and _is_number(value):
            return _from_epoch(value)
        return _from_text(value)
    if isinstance(value, (int, float)):
        return _from_epoch(value)
    raise Invalid(f"{EXPECTED}, got {describe(value)}")


def _from_epoch(value: int | float | str) -> datetime:
    number = float(value)
    if not math.isfinite(number):
        raise Invalid(f"{EXPECTED}, got {describe(value)}")
    if abs(number) >= 1e11:  # milliseconds: 1e11 seconds is the year 5138
        number /= 1000.0
    try:
        return datetime.fromtimestamp(number, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise Invalid(f"epoch value out of range: {describe(value)}") from None


def _from_text(value: str) -> datetime:
    text = _iso_text(value.strip())
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(_why_not(value)) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:  # 0001-01-01 east of UTC, 9999-12-31 west of it
        raise Invalid(f"out of range once converted to UTC: {describe(value)}") from None


def _iso_text(text: str) -> str:
    """A warehouse rendering as the ISO 8601 text it means; other text as it is."""
    match = WAREHOUSE_RE.match(text)
    if match is None:
        return text
    moment, zone = match["moment"], match["zone"]
    if zone is None:
        return moment
    return moment + ("+00:00" if zone.lower() in UTC_NAMES else zone)


def _why_not(value: str) -> str:
    text = value.strip()
    abbreviation = ABBREVIATION_RE.match(text)
    if abbreviation and abbreviation["zone"].lower() not in UTC_NAMES:
        return (f"time zone {abbreviation['zone']!r} is ambiguous (CST, IST, BST... each name "
                f"several zones): give a UTC offset such as -05:00, got {describe(value)}")
    if SLASHED_RE.match(text):
        return f"day and month order is ambiguous: use YYYY-MM-DD, got {describe(value)}"
    return f"{EXPECTED}, got {describe(value)}"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def describe(value: Any) -> str:
    """A short, safe rendering of a value for an error message."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "...'"
