"""The list pages' shared parts: query string <-> ListSpec, columns, CSV export."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from flask import Response, redirect, request, url_for
from werkzeug.datastructures import MultiDict

from ..ingest import fields as catalog_fields
from .. import csvexport
from ..extensions import db
from ..analytics.buckets import range_label
from ..analytics.listing import OPERATORS, PER_PAGE, RANGE, Filter, Kind, ListSpec, usable_key
from .blueprint import bp

MAX_FILTERS = 10
# Far past any list's end, yet (page - 1) * per_page stays within the 64-bit OFFSET both
# databases take (?page=10**18 was a 500); a page past the end redirects to the last one.
MAX_PAGE = 10**9


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    type: str  # a catalog type, or METRIC / DATE_METRIC / PCT for metrics
    numeric: bool = False
    format: str | None = None  # the field's display format (number, percent, currency:USD)


def spec_from_args(args: MultiDict, kind: Kind) -> ListSpec:
    """?q=&field=&op=&value=(repeated)&sort=&dir=&page=&per_page= -> ListSpec."""
    triples = zip(args.getlist("field"), args.getlist("op"), args.getlist("value"))
    filters = [Filter(f, o, v) for f, o, v in triples if f and o and v.strip()][:MAX_FILTERS]
    per_page = _int(args.get("per_page"), PER_PAGE[0])
    return ListSpec(
        search=args.get("q", "")[:200],
        filters=filters,
        sort=args.get("sort", ""),
        desc=args.get("dir") == "desc",
        page=min(max(1, _int(args.get("page"), 1)), MAX_PAGE),
        per_page=per_page if per_page in PER_PAGE else PER_PAGE[0],
    )


def _int(raw: str | None, default: int) -> int:
    try:
        return int(raw) if raw is not None else default
    except ValueError:
        return default


def list_url(endpoint: str, spec: ListSpec, **changes: Any) -> str:
    """The list's URL with some parameters changed (filters kept unless given)."""
    state: dict[str, Any] = {
        "q": spec.search or None, "sort": spec.sort or None,
        "dir": "desc" if spec.desc else None, "page": spec.page if spec.page > 1 else None,
        "per_page": spec.per_page if spec.per_page != PER_PAGE[0] else None,
        "col": request.args.getlist("col") or None,
    }
    filters = changes.pop("filters", spec.filters)
    state.update(changes)
    params = {k: v for k, v in state.items() if v is not None}
    params.update(field=[f.field for f in filters], op=[f.op for f in filters],
                  value=[f.value for f in filters])
    return url_for(endpoint, **params)


def sort_url(endpoint: str, spec: ListSpec, key: str, default_desc: bool = False) -> str:
    """Clicking a header sorts by it; clicking the sorted header flips the direction."""
    if spec.sort == key:
        desc = not spec.desc
    else:
        desc = default_desc
    return list_url(endpoint, spec, sort=key, dir="desc" if desc else None, page=None)


def filter_chips(endpoint: str, spec: ListSpec, labels: dict[str, str],
                 formats: dict[str, str | None] | None = None) -> list[dict[str, str]]:
    """Each active filter as a label and the URL without it (a range as its bucket reads)."""
    chips = []
    for i, f in enumerate(spec.filters):
        rest = spec.filters[:i] + spec.filters[i + 1:]
        label = f"{labels.get(f.field, f.field)} {OPERATORS.get(f.op, f.op)} {f.value}"
        if f.op == "between":
            label = f"{labels.get(f.field, f.field)} {_range_text(f.value, (formats or {}).get(f.field))}"
        chips.append({"label": label, "remove": list_url(endpoint, spec, filters=rest, page=None)})
    return chips


def _range_text(value: str, display_format: str | None) -> str:
    low, _sep, high = value.partition(RANGE)
    try:
        return range_label(float(low), float(high), display_format)
    except ValueError:  # dates (or text): from the first up to the second
        return f"from {low} to before {high}"


def hidden_state(spec: ListSpec) -> list[tuple[str, str]]:
    """Form fields that carry the current list state through a GET form."""
    pairs: list[tuple[str, str]] = []
    for f in spec.filters:
        pairs += [("field", f.field), ("op", f.op), ("value", f.value)]
    if spec.sort:
        pairs.append(("sort", spec.sort))
    if spec.desc:
        pairs.append(("dir", "desc"))
    pairs += [("col", c) for c in request.args.getlist("col")]
    return pairs


def csv_response(filename: str, columns: list[Column], rows: Iterable[dict[str, Any]],
                 key_columns: list[tuple[str, str]]) -> Response:
    """Stream the rows as CSV: the key columns, then each column (dimensions raw, not styled)."""
    header = [label for _key, label in key_columns] + [c.label for c in columns]
    cells = ([_csv_value(row.get(k)) for k, _label in key_columns]
             + [_csv_value(_value(row, c)) for c in columns] for row in rows)
    return csvexport.response(filename, header, cells)


def _value(row: dict[str, Any], column: Column) -> Any:
    if column.key in row:
        return row[column.key]
    return (row.get("traits") or {}).get(column.key)


def _csv_value(value: Any) -> Any:
    # Derived figures (rates, averages) to two decimals; the writer does the rest.
    return round(value, 2) if isinstance(value, float) else value


# --- one list page, for accounts and users ---------------------------------------------------

@dataclass
class ListPage:
    """What a list template needs."""

    kind: Kind
    obj: str
    endpoint: str
    spec: ListSpec
    columns: list[Column]
    dimensions: list[Column]  # every dimension, for the filter and column pickers
    metrics: list[Column]
    problems: list[str]
    core: list[Column] = field(default_factory=list)  # own columns (name, IDs): filterable too
    ranges: dict[str, list[Any]] = field(default_factory=dict)  # bucket filters per dimension


def prepare(kind: Kind, obj: str, endpoint: str, defaults: list[str],
            metrics: list[Column]) -> ListPage:
    """Read the request: which columns, which filters (bad ones dropped with a reason)."""
    from ..analytics.listing import BadFilter, check_filter
    from .common import workspace_id

    ws = workspace_id()
    catalog = catalog_fields.load_catalog(db.session, ws, obj, include_hidden=False)
    dims = [Column(f.key, f.label, f.type, f.type == "NUMBER", f.display_format)
            for f in catalog.values()
            if usable_key(f.key) and f.key not in kind.core]
    types = {c.key: c.type for c in dims}
    spec = spec_from_args(request.args, kind)
    problems, kept = [], []
    for f in spec.filters:
        try:
            check_filter(kind, f, types)
            kept.append(f)
        except BadFilter as exc:
            problems.append(f"Filter on {f.field} ignored: {exc}.")
    spec.filters = kept
    chosen = [k for k in request.args.getlist("col") if k in types] or \
        [k for k in defaults if k in types]
    by_key = {c.key: c for c in dims}
    columns = [by_key[k] for k in chosen] + metrics
    # Searched columns first (name, email): the filter's default, then the other IDs.
    core = [Column(k, catalog_fields.CORE[obj][k][0], "STRING")
            for k in dict.fromkeys(kind.search + kind.core)]
    return ListPage(kind, obj, endpoint, spec, columns, dims, metrics, problems, core)


def types_of(page: ListPage) -> dict[str, str]:
    return {c.key: c.type for c in page.dimensions}


def serve_list(page: ListPage, filename: str, key_columns: list[tuple[str, str]]):
    """The CSV of the whole filtered list, a redirect for a page past the end, or the page."""
    from ..analytics.listing import all_rows, list_page
    from .common import workspace_id

    ws = workspace_id()
    if request.args.get("format") == "csv":
        rows = all_rows(db.session, page.kind, ws, page.spec, types_of(page))
        return csv_response(filename, page.dimensions + page.metrics, rows, key_columns)
    result = list_page(db.session, page.kind, ws, page.spec, types_of(page))
    if not result.rows and result.page > result.pages:  # a stale link past the end
        return redirect(list_url(page.endpoint, page.spec, page=result.pages))
    return result


# --- template helpers (globals, so imported macros can call them) ----------------------------

@bp.app_template_global("list_url")
def _list_url_global(endpoint: str, spec: ListSpec, **changes: Any) -> str:
    return list_url(endpoint, spec, **changes)


@bp.app_template_global("sort_url")
def _sort_url_global(endpoint: str, spec: ListSpec, key: str, default_desc: bool = False) -> str:
    return sort_url(endpoint, spec, key, default_desc)


@bp.app_template_global("list_hidden")
def _hidden_global(spec: ListSpec) -> list[tuple[str, str]]:
    return hidden_state(spec)


@bp.app_template_global("list_chips")
def _chips_global(endpoint: str, spec: ListSpec, page: ListPage) -> list[dict[str, str]]:
    labels = {c.key: c.label for c in page.dimensions + page.metrics}
    labels.update({c.key: c.label for c in page.core})
    return filter_chips(endpoint, spec, labels, {c.key: c.format for c in page.dimensions})
