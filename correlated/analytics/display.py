"""Numbers as people read them, by a field's display format (number, percent, currency:USD).
Plain functions: pages, chart labels and breakdown buckets share them."""
from __future__ import annotations

import math

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "CAD": "CA$",
           "AUD": "A$", "BRL": "R$"}


def currency_of(display_format: str | None) -> str | None:
    """The ISO code of a currency format ('currency:EUR' -> 'EUR'), else None."""
    if display_format and display_format.startswith("currency:"):
        return display_format.split(":", 1)[1]
    return None


def _plain(value: float, digits: int = 2) -> str:
    """1234 -> '1,234', 1234.5 -> '1,234.5' (at most `digits` decimals, no trailing zeros)."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.{digits}f}".rstrip("0").rstrip(".")


def _compact(value: float) -> str:
    """12,345 -> '12.3k', 250,000 -> '250k', 1,500,000 -> '1.5M'."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return _plain(round(value / size, 1), 1) + suffix
    return _plain(value)


def format_number(value: float, display_format: str | None = None, compact: bool = False) -> str:
    """A number in its field's display format: $196,300, 12.5%, 1,200 (compact: $196.3k)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "—"
    text = _compact(value) if compact else _plain(value)
    if display_format == "percent":
        return text + "%"
    code = currency_of(display_format)
    if code is None:
        return text
    sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
    symbol = SYMBOLS.get(code)
    return f"{sign}{symbol}{digits}" if symbol else f"{sign}{code} {digits}"
