"""Score models: parsing and validating the JSON a caller sends into typed inputs and tiers.

An input is a source (a dimension, a metric over a window, or membership of a signal: the
signals' condition machinery without the comparison), a transform of its value to 0..1, a
weight and an optional group. Every problem is collected, each naming its input (by index) and
part, so one 422 answers everything wrong with a model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Union

from sqlalchemy.orm import Session

from ..ingest import fields as catalog
from ..signals import definitions as conditions
from ..signals.definitions import Dimension, InSignal, Metric
from ..signals.models import Signal
from .models import ScoreModel

OBJECTS = ("account", "user")
MAX_INPUTS = 20
MAX_TIERS = 10
MAX_WEIGHT = 1000
TRANSFORMS = ("minmax", "bands", "bool", "recency", "map")
# What each kind of value can be turned into points with.
TRANSFORMS_BY_KIND = {"number": ("minmax", "bands", "bool", "recency"), "bool": ("bool",),
                      "date": ("recency", "bands"), "text": ("map",)}
KIND_OF_TYPE = {"NUMBER": "number", "BOOLEAN": "bool", "DATE": "date", "DATETIME": "date",
                "STRING": "text", "EMAIL": "text", "ENUM": "text"}


@dataclass(frozen=True)
class ActiveShare:
    """Share of an account's users active in the last `window_days` (0..1; missing without
    users)."""

    window_days: int


Source = Union[Dimension, Metric, InSignal, ActiveShare]


@dataclass(frozen=True)
class Transform:
    type: str
    clip: tuple[float, float] | None = None  # minmax: percentiles (0..100) to clip at
    bands: tuple[tuple[float | None, float], ...] = ()  # (upper bound or None, points)
    days: int = 0  # recency: points fall from 1 to 0 over this many days
    values: tuple[tuple[str, float], ...] = ()  # map: value -> points
    default: float = 0.0  # map: points of a value not in `values`
    invert: bool = False  # minmax: the lowest value scores 1


@dataclass(frozen=True)
class Input:
    source: Source
    kind: str  # number | bool | date | text
    transform: Transform
    weight: float
    group: str | None
    label: str


@dataclass(frozen=True)
class Tier:
    name: str
    min: float


@dataclass
class Model:
    name: str
    object: str
    inputs: list[Input] = field(default_factory=list)
    tiers: list[Tier] = field(default_factory=list)  # highest bound first
    raw_inputs: list[dict[str, Any]] = field(default_factory=list)
    raw_tiers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total_weight(self) -> float:
        return sum(i.weight for i in self.inputs)


class ModelError(Exception):
    """A model with problems: a list of {"input": index | None, "field", "message"}."""

    def __init__(self, problems: list[dict[str, Any]]):
        super().__init__("; ".join(describe(p) for p in problems))
        self.problems = problems


def describe(problem: dict[str, Any]) -> str:
    if problem.get("input") is not None:
        where = f"inputs[{problem['input']}]" + (f".{problem['field']}" if problem.get("field")
                                                 else "")
    else:
        where = problem.get("field") or "body"
    return f"{where}: {problem['message']}"


class _Problems(list):
    def add(self, index: int | None, message: str, name: str | None = None) -> None:
        self.append({"input": index, "field": name, "message": message})


# --- parsing --------------------------------------------------------------------------------

def parse(session: Session, workspace_id: int, body: Any,
          base: ScoreModel | None = None) -> Model:
    """The validated model of `body` (merged over `base` for a PATCH: its signal inputs must
    not use `base` themselves), or ModelError."""
    if not isinstance(body, dict):
        raise ModelError([{"input": None, "field": "body", "message": "must be a JSON object"}])
    given = body if base is None else {"name": base.name, "object": base.object,
                                       "inputs": base.inputs, "tiers": base.tiers, **body}
    problems = _Problems()
    name = given.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 120:
        problems.add(None, "a name of 1 to 120 characters is required", "name")
    obj = given.get("object", "account")
    if obj not in OBJECTS:
        problems.add(None, "must be account or user", "object")
        obj = "account"
    raw = given.get("inputs")
    if not isinstance(raw, list) or not raw or len(raw) > MAX_INPUTS:
        problems.add(None, f"a list of 1 to {MAX_INPUTS} inputs is required", "inputs")
        raw = []
    known = catalog.load_catalog(session, workspace_id, obj)
    props = catalog.load_catalog(session, workspace_id, "event")
    model_id = base.id if base is not None else None
    inputs = [_input(session, workspace_id, obj, i, item, known, props, problems, model_id)
              for i, item in enumerate(raw)]
    tiers = _tiers(given.get("tiers", []), problems)
    if problems:
        raise ModelError(problems)
    labels = _unique([i.label for i in inputs])
    inputs = [Input(i.source, i.kind, i.transform, i.weight, i.group, text)
              for i, text in zip(inputs, labels)]
    return Model(name.strip(), obj, inputs, tiers, raw, given.get("tiers", []))


def _unique(labels: list[str]) -> list[str]:
    out: list[str] = []
    for text in labels:
        out.append(text if text not in out else f"{text} #{len(out) + 1}")
    return out


def _input(session: Session, workspace_id: int, obj: str, i: int, item: Any, known: dict,
           props: dict, problems: _Problems, model_id: str | None = None) -> Input | None:
    if not isinstance(item, dict):
        problems.add(i, "must be an object")
        return None
    before = len(problems)
    found = _source(session, workspace_id, obj, i, item.get("source"), known, props, problems,
                    model_id)
    weight = item.get("weight", 1)
    if not conditions._number(weight) or not 0 < weight <= MAX_WEIGHT:
        problems.add(i, f"must be a number above 0 and at most {MAX_WEIGHT}", "weight")
    group = item.get("group")
    if group is not None and (not isinstance(group, str) or not 0 < len(group) <= 40):
        problems.add(i, "must be a name of 1 to 40 characters", "group")
    text = item.get("label")
    if text is not None and (not isinstance(text, str) or not 0 < len(text.strip()) <= 80):
        problems.add(i, "must be 1 to 80 characters", "label")
    transform = _transform(i, item.get("transform"), found[1] if found else None, problems)
    if found is None or transform is None or len(problems) > before:
        return None
    source, kind = found
    return Input(source, kind, transform, float(weight), group,
                 text.strip() if text else _label(session, workspace_id, source))


def _label(session: Session, workspace_id: int, source: Source) -> str:
    if isinstance(source, ActiveShare):
        return f"active users share {source.window_days}d"
    if isinstance(source, InSignal):
        signal = session.get(Signal, (workspace_id, source.signal))
        return f"in {signal.name if signal else source.signal}"
    return conditions.label(source)


def _source(session: Session, workspace_id: int, obj: str, i: int, item: Any, known: dict,
            props: dict, problems: _Problems, model_id: str | None) -> tuple[Source, str] | None:
    """The source and the kind of value it gives, or a problem named `source`."""
    found = _Problems()
    result = _source_of(session, workspace_id, obj, i, item, known, props, found, model_id)
    for p in found:  # the signals' validators name conditions; here they are sources
        problems.add(i, p["message"], "source")
    return result


def _source_of(session: Session, workspace_id: int, obj: str, i: int, item: Any, known: dict,
               props: dict, problems: Any, model_id: str | None) -> tuple[Source, str] | None:
    if not isinstance(item, dict):
        problems.add(i, "give a source: {field}, {metric, window_days, ...} or {signal}")
        return None
    if "signal" in item:
        return _signal(session, workspace_id, obj, i, item["signal"], problems, model_id)
    if item.get("metric") == "active_user_share":
        window = item.get("window_days", 30)
        if obj != "account" or not conditions._whole(window, 1, conditions.MAX_WINDOW):
            problems.add(i, "active_user_share is a metric of accounts, over window_days "
                            f"from 1 to {conditions.MAX_WINDOW}")
            return None
        return ActiveShare(window), "number"
    if "metric" in item:
        metric = conditions._metric(obj, i, {**item, "op": "gte", "value": 0}, props, problems)
        return (metric, "number") if metric else None
    if "field" in item:
        found = conditions._field(obj, i, item["field"], known, problems)
        if found is None:
            return None
        key, typ, core = found
        kind = KIND_OF_TYPE.get(typ)
        if kind is None:
            problems.add(i, f"{typ} field {key!r} cannot be scored")
            return None
        return Dimension(key, typ, "is_set", None, core), kind
    problems.add(i, "give a source: {field}, {metric, window_days, ...} or {signal}")
    return None


def _signal(session: Session, workspace_id: int, obj: str, i: int, target: Any,
            problems: Any, model_id: str | None) -> tuple[Source, str] | None:
    other = session.get(Signal, (workspace_id, target)) if isinstance(target, str) else None
    if other is None:
        problems.add(i, f"no signal with id {target!r}")
        return None
    if other.object != obj:
        problems.add(i, f"signal {other.name!r} is about {other.object}s, this model about {obj}s")
        return None
    if model_id is not None and model_id in conditions.scores_reached(session, workspace_id,
                                                                      target):
        problems.add(i, f"signal {other.name!r} uses this score: a cycle")
        return None
    return InSignal(target, "in"), "bool"


# --- transforms -----------------------------------------------------------------------------

def _points(value: Any) -> bool:
    return conditions._number(value) and 0 <= value <= 1


def _transform(i: int, item: Any, kind: str | None, problems: _Problems) -> Transform | None:
    if isinstance(item, str):
        item = {"type": item}
    kind_ok = TRANSFORMS_BY_KIND.get(kind or "", TRANSFORMS)
    if not isinstance(item, dict) or item.get("type") not in TRANSFORMS:
        problems.add(i, f"give a transform {{type: {' | '.join(TRANSFORMS)}}}", "transform")
        return None
    kind_name = item["type"]
    if kind is not None and kind_name not in kind_ok:
        problems.add(i, f"{kind_name} does not fit a {kind} source (use {', '.join(kind_ok)})",
                     "transform")
        return None
    before = len(problems)
    made = {"minmax": _minmax, "bands": _bands, "bool": lambda i, t, p: Transform("bool"),
            "recency": _recency, "map": _map}[kind_name](i, item, problems)
    return made if len(problems) == before else None


def _minmax(i: int, item: dict, problems: _Problems) -> Transform | None:
    clip = item.get("clip")
    if clip is not None and not (isinstance(clip, list) and len(clip) == 2
                                 and all(conditions._number(c) and 0 <= c <= 100 for c in clip)
                                 and clip[0] < clip[1]):
        problems.add(i, "clip must be [low, high] percentiles, 0 <= low < high <= 100",
                     "transform")
        return None
    invert = item.get("invert", False)
    if not isinstance(invert, bool):
        problems.add(i, "invert must be true or false", "transform")
    return Transform("minmax", clip=tuple(clip) if clip else None, invert=invert is True)


def _bands(i: int, item: dict, problems: _Problems) -> Transform | None:
    bands = item.get("bands")
    if not isinstance(bands, list) or not bands or len(bands) > 20:
        problems.add(i, "bands must be a list of 1 to 20 {max, points} (the last may omit max)",
                     "transform")
        return None
    out, last = [], -math.inf
    for n, band in enumerate(bands):
        top = band.get("max") if isinstance(band, dict) else None
        points = band.get("points") if isinstance(band, dict) else None
        final = isinstance(band, dict) and "max" not in band and n == len(bands) - 1
        if not _points(points) or not (final or (conditions._number(top) and top > last)):
            problems.add(i, f"bands[{n}] must be {{max, points}} with points from 0 to 1 and "
                            "each max above the one before (only the last may omit max)",
                         "transform")
            return None
        out.append((None if final else float(top), float(points)))
        last = top if not final else last
    return Transform("bands", bands=tuple(out))


def _recency(i: int, item: dict, problems: _Problems) -> Transform | None:
    days = item.get("days")
    if not conditions._whole(days, 1, 3650):
        problems.add(i, "recency needs days, a whole number from 1 to 3650", "transform")
        return None
    return Transform("recency", days=days)


def _map(i: int, item: dict, problems: _Problems) -> Transform | None:
    values, default = item.get("values"), item.get("default", 0)
    if (not isinstance(values, dict) or not values or len(values) > 100
            or not all(_points(v) for v in values.values())):
        problems.add(i, "map needs values: {value: points from 0 to 1}", "transform")
        return None
    if not _points(default):
        problems.add(i, "default must be points from 0 to 1", "transform")
        return None
    return Transform("map", values=tuple((str(k), float(v)) for k, v in values.items()),
                     default=float(default))


# --- tiers ----------------------------------------------------------------------------------

def _tiers(raw: Any, problems: _Problems) -> list[Tier]:
    if not isinstance(raw, list) or len(raw) > MAX_TIERS:
        problems.add(None, f"a list of up to {MAX_TIERS} {{name, min}}", "tiers")
        return []
    tiers = []
    for n, item in enumerate(raw):
        name = item.get("name") if isinstance(item, dict) else None
        low = item.get("min") if isinstance(item, dict) else None
        if (not isinstance(name, str) or not 0 < len(name.strip()) <= 64
                or not conditions._number(low) or not 0 <= low <= 100):
            problems.add(None, f"tiers[{n}] must be {{name: 1 to 64 characters, min: 0 to 100}}",
                         "tiers")
            continue
        tiers.append(Tier(name.strip(), float(low)))
    if len({t.name for t in tiers}) < len(tiers) or len({t.min for t in tiers}) < len(tiers):
        problems.add(None, "tier names and mins must be distinct", "tiers")
    return sorted(tiers, key=lambda t: -t.min)

