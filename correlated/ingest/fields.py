"""The field catalog: core fields, aliases, default dimensions, and the value types.

Core fields are stored in their own columns (account_id, name, user_id, email, ...); every other
key is a dimension (accounts, users) or a property (events), typed by the catalog.
"""
from __future__ import annotations

import math
import re
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .. import database
from ..models import Field
from ..vocabulary import ID_FIELD
# One Invalid for every value check, and the one timestamp parser (re-exported from here).
from .timestamps import Invalid, describe, looks_like_datetime, parse_timestamp, unwrap

TYPES = ("STRING", "NUMBER", "BOOLEAN", "DATE", "DATETIME", "EMAIL", "OBJECT", "ARRAY", "ENUM")

# Columns with their own storage, per object: key -> (label, type, aliases).
CORE: dict[str, dict[str, tuple[str, str, tuple[str, ...]]]] = {
    "account": {
        "account_id": ("Account ID", "STRING",
                       ("accountid", "group_id", "groupid", "company_id",
                        "organization_id", "org_id")),
        "name": ("Company Name", "STRING",
                 ("company_name", "companyname", "company", "account_name", "organization_name")),
    },
    "user": {
        "user_id": ("User ID", "STRING", ("userid", "external_id")),
        "email": ("Email", "EMAIL", ("email_address", "user_email", "emailaddress")),
        "account_id": ("Account ID", "STRING",
                       ("accountid", "group_id", "groupid", "company_id", "organization_id",
                        "org_id")),
    },
    "event": {
        "event": ("Event Name", "STRING", ("event_name", "eventname", "event_type", "action")),
        "timestamp": ("Timestamp", "DATETIME",
                      ("time", "ts", "occurred_at", "event_time", "event_timestamp")),
        "user_id": ("User ID", "STRING", ("userid",)),
        "account_id": ("Account ID", "STRING",
                       ("accountid", "group_id", "groupid", "company_id", "organization_id",
                        "org_id")),
        "event_id": ("Event ID", "STRING", ("eventid", "message_id", "messageid", "insert_id")),
    },
}

# Dimensions every workspace starts with (key, label, type).
DEFAULT_DIMENSIONS: dict[str, list[tuple[str, str, str]]] = {
    "account": [
        ("domain", "Domain", "STRING"), ("plan", "Plan", "STRING"),
        ("industry", "Industry", "STRING"), ("employees", "Employees", "NUMBER"),
        ("region", "Region", "STRING"), ("country", "Country", "STRING"),
        ("arr", "ARR", "NUMBER"), ("mrr", "MRR", "NUMBER"), ("seats", "Seats", "NUMBER"),
        ("owner", "Account Owner", "STRING"), ("stage", "Lifecycle Stage", "STRING"),
        ("renewal_date", "Renewal Date", "DATE"), ("created_at", "Created At", "DATETIME"),
    ],
    "user": [
        ("first_name", "First Name", "STRING"), ("last_name", "Last Name", "STRING"),
        ("title", "Title", "STRING"), ("role", "Role", "STRING"),
        ("phone", "Phone", "STRING"), ("created_at", "Created At", "DATETIME"),
    ],
    "event": [],
}

REQUIRED = {"account": ("account_id", "name"), "user": ("user_id", "email"),
            "event": ("event", "timestamp", "user_id")}


def required_fields(obj: str, operation: str | None) -> tuple[str, ...]:
    """Fields a row must give: all of them to create a record, only its ID to change one."""
    if operation in ("update", "remove"):
        return (ID_FIELD[obj],)
    return REQUIRED[obj]


def can_create(obj: str, row: dict[str, Any]) -> bool:
    """Whether a row (keyed by core field names) gives every field creating a record needs."""
    return all(row.get(key) not in (None, "") for key in REQUIRED[obj])

ID_MAX = 255
KEY_MAX = 128
STRING_MAX = 65_536
INT64 = 2**63
EXACT_FLOAT = 2**53  # every integer up to here is exact as a JSON float (a double)

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
CONTROL_RE = re.compile(r"[\x00-\x1f]")


def alias_map(obj: str) -> dict[str, str]:
    """Lower-cased column name -> core field, for the core fields and their aliases."""
    mapping: dict[str, str] = {}
    for key, (_label, _type, aliases) in CORE[obj].items():
        mapping[key] = key
        for alias in aliases:
            mapping[alias] = key
    return mapping


def seed_defaults(session: Session, workspace_id: int) -> None:
    """Put the core and default fields of every object in a new workspace's catalog."""
    rows = [
        {"workspace_id": workspace_id, "object": obj, "key": key, "label": label, "type": typ,
         "is_default": True, "display_format": DEFAULT_FORMATS.get((obj, key))}
        for obj in CORE
        for key, label, typ in [(k, v[0], v[1]) for k, v in CORE[obj].items()]
        + DEFAULT_DIMENSIONS[obj]
    ]
    stmt = database.insert(session.connection(), Field.__table__)
    session.execute(stmt.on_conflict_do_nothing(), rows)


def load_catalog(session: Session, workspace_id: int, obj: str,
                 include_hidden: bool = True) -> dict[str, Field]:
    """The object's fields keyed by lower-cased key (pickers and lists: without hidden ones)."""
    query = sa.select(Field).where(Field.workspace_id == workspace_id, Field.object == obj)
    if not include_hidden:
        query = query.where(Field.hidden.is_(False))
    return {f.key.lower(): f for f in session.scalars(query)}


def label_for(key: str) -> str:
    return key.replace("__", " ").replace("_", " ").strip().title() or key


# --- values ---------------------------------------------------------------------------------

def infer_type(value: Any) -> str:
    """The type a new custom field gets from its first non-null value."""
    inner = unwrap(value)
    if inner is not value and (DATE_RE.match(inner.strip()) or looks_like_datetime(inner)):
        value = inner  # BigQuery's wrapped DATE / TIMESTAMP: a date or time, not an object
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, (int, float)):
        return "NUMBER"
    if isinstance(value, dict):
        return "OBJECT"
    if isinstance(value, list):
        return "ARRAY"
    text = str(value)
    if EMAIL_RE.match(text):
        return "EMAIL"
    if DATE_RE.match(text):
        return "DATE"
    if looks_like_datetime(text):
        return "DATETIME"
    return "STRING"


def to_identifier(value: Any) -> str:
    """An ID: a non-empty string or an integer, at most 255 characters."""
    if isinstance(value, bool) or value is None:
        raise Invalid(f"expected a string or integer ID, got {describe(value)}")
    if isinstance(value, float) and value.is_integer():
        if abs(value) > EXACT_FLOAT:  # 1e20, 12345678901234567.0: not the digits sent
            raise Invalid(f"the number {value!r} is not exact; send a large ID as a string "
                          "or as an integer without a fraction or exponent")
        value = int(value)
    if not isinstance(value, (str, int)):
        raise Invalid(f"expected a string or integer ID, got {describe(value)}")
    text = str(value).strip()
    if not text:
        raise Invalid("must not be empty")
    if len(text) > ID_MAX:
        raise Invalid(f"longer than {ID_MAX} characters")
    if not (text.isascii() and text.isprintable()) and CONTROL_RE.search(text):
        raise Invalid("contains control characters")  # (printable ASCII has none: no regex)
    return text


def coerce(value: Any, typ: str) -> Any:
    """`value` as stored for a field of type `typ`, or Invalid naming the problem."""
    if value is None:
        return None
    return _COERCE.get(typ, _to_any)(value)


def _to_string(value: Any) -> str:
    if isinstance(value, (dict, list)):
        raise Invalid(f"expected text, got {describe(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise Invalid(f"expected text, got {describe(value)}")
    text = value if isinstance(value, str) else _scalar_text(value)
    if len(text) > STRING_MAX:
        raise Invalid(f"longer than {STRING_MAX:,} characters")
    return text


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _to_number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise Invalid(f"expected a number, got {describe(value)}")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise Invalid(f"expected a number, got {describe(value)}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise Invalid(f"expected a finite number, got {describe(value)}")
    if isinstance(value, int) and not -INT64 <= value < INT64:
        raise Invalid("number out of range (beyond 64-bit integers)")
    return value


_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


def _to_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise Invalid(f"expected true or false, got {describe(value)}")


def _to_date(value: Any) -> str:
    value = unwrap(value)
    if isinstance(value, str) and DATE_RE.match(value.strip()):
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            raise Invalid(f"not a valid date: {describe(value)}") from None
    try:
        return parse_timestamp(value).date().isoformat()
    except Invalid:
        raise Invalid(f"expected a date (YYYY-MM-DD), got {describe(value)}") from None


def _to_datetime(value: Any) -> str:
    return parse_timestamp(value).isoformat()


def _to_email(value: Any) -> str:
    if not isinstance(value, str) or not EMAIL_RE.match(value.strip()) or len(value) > 254:
        raise Invalid(f"not a valid email address: {describe(value)}")
    return value.strip()


def _to_object(value: Any) -> dict:
    if not isinstance(value, dict):
        raise Invalid(f"expected an object, got {describe(value)}")
    return value


def _to_array(value: Any) -> list:
    if not isinstance(value, list):
        raise Invalid(f"expected an array, got {describe(value)}")
    return value


def _to_any(value: Any) -> Any:
    return value


_COERCE = {
    "STRING": _to_string, "ENUM": _to_string, "NUMBER": _to_number, "BOOLEAN": _to_boolean,
    "DATE": _to_date, "DATETIME": _to_datetime, "EMAIL": _to_email, "OBJECT": _to_object,
    "ARRAY": _to_array,
}


def key_problem(key: str) -> str | None:
    """Why `key` cannot name a custom field, or None: the one rule of the REST API and the
    dashboard's "Add custom field"."""
    if not key or len(key) > KEY_MAX:
        return f"must be 1 to {KEY_MAX} characters"
    if CONTROL_RE.search(key):
        return "must not contain control characters"
    if "__" in key:
        return "must not contain '__' (it nests a column into an object)"
    if key != key.strip():
        return "must not start or end with a space"
    return None


# How the dashboards show a field's values: None (as sent), number, percent (12.5 -> 12.5%)
# or currency with its ISO 4217 code (currency:USD -> $196,300).
DISPLAY_FORMATS = ("number", "percent", "currency")
CURRENCY_RE = re.compile(r"^currency:[A-Z]{3}$")
DEFAULT_FORMATS = {("account", "arr"): "currency:USD", ("account", "mrr"): "currency:USD"}


def format_problem(display_format: str) -> str | None:
    """Why `display_format` is not a display format, or None."""
    if display_format in ("number", "percent") or CURRENCY_RE.match(display_format):
        return None
    return "must be number, percent or currency:<ISO code>, e.g. currency:USD"
