"""Alert rules, and `enqueue`: a signal's transitions -> deliveries, in the caller's transaction.

The signal evaluation calls `enqueue` inside the transaction that records its transitions, so
a transition and the deliveries it causes commit together or not at all (the outbox).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..database import chunks
from ..models import utcnow
from . import messages
from .destinations import Invalid, find_destination, storable
from .models import RULE_ON, AlertRule, Delivery, message_id
from .settings import AlertSettings, current

RETRY_FOR = timedelta(hours=24)
RULE_KINDS = {"enter": {"entered"}, "exit": {"exited"}, "both": {"entered", "exited"}}
TYPES = {"entered": "signal.entered", "exited": "signal.exited"}


@dataclass(frozen=True)
class TransitionEvent:
    """An entity entering or leaving a signal, as the signal evaluation hands it over."""

    entity_type: str  # account | user
    entity_id: str
    entity_name: str | None
    kind: str  # entered | exited
    at: datetime
    values: dict[str, Any] = field(default_factory=dict)
    backfill: bool = False  # a new signal's first evaluation: never alerts
    dimensions: dict[str, Any] = field(default_factory=dict)

    @property
    def entity_key(self) -> str:
        return f"{self.entity_type}:{self.entity_id}"


# --- rules ----------------------------------------------------------------------------------

def create_rule(session: Session, workspace_id: int, body: dict[str, Any]) -> AlertRule:
    """A rule from checked input (signal_id, on, destination_id, cooldown_days, owner_dimension,
    digest_threshold); Invalid names each bad field. The caller commits."""
    errors: dict[str, str] = {}
    signal_id = body.get("signal_id")
    if not storable(signal_id) or not 0 < len(signal_id) <= 64:
        errors["signal_id"] = "required: a signal id"
    on = body.get("on", "enter")
    if on not in RULE_ON:
        errors["on"] = f"must be one of {', '.join(RULE_ON)}"
    destination_id = body.get("destination_id")
    if not isinstance(destination_id, str) or \
            find_destination(session, workspace_id, destination_id) is None:
        errors["destination_id"] = "no such destination in this workspace"
    cooldown = _integer(body, "cooldown_days", 1, 0, 365, errors)
    threshold = _integer(body, "digest_threshold", 10, 1, 10_000, errors)
    owner = body.get("owner_dimension")
    if owner is not None and (not storable(owner) or not 0 < len(owner) <= 128):
        errors["owner_dimension"] = "a dimension key (at most 128 characters) or null"
    unknown = set(body) - {"signal_id", "on", "destination_id", "cooldown_days",
                           "owner_dimension", "digest_threshold"}
    errors.update({key: "not a setting of an alert rule" for key in sorted(unknown)})
    if errors:
        raise Invalid(errors)
    rule = AlertRule(workspace_id=workspace_id, signal_id=signal_id, on=on,
                     destination_id=destination_id, cooldown_days=cooldown,
                     owner_dimension=owner, digest_threshold=threshold)
    session.add(rule)
    session.flush()
    return rule


def _integer(body: dict[str, Any], key: str, default: int, low: int, high: int,
             errors: dict[str, str]) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        errors[key] = f"an integer from {low} to {high}"
        return default
    return value


def list_rules(session: Session, workspace_id: int,
               signal_id: str | None = None) -> list[AlertRule]:
    query = sa.select(AlertRule).where(AlertRule.workspace_id == workspace_id)
    if signal_id is not None:
        query = query.where(AlertRule.signal_id == signal_id)
    return list(session.scalars(query.order_by(AlertRule.created_at)))


def find_rule(session: Session, workspace_id: int, rule_id: str) -> AlertRule | None:
    return session.get(AlertRule, (workspace_id, rule_id)) if storable(rule_id) else None


def rule_to_dict(rule: AlertRule) -> dict[str, Any]:
    return {k: getattr(rule, k) for k in ("id", "signal_id", "on", "destination_id",
                                          "cooldown_days", "owner_dimension", "digest_threshold",
                                          "created_at")}


# --- enqueue --------------------------------------------------------------------------------

def enqueue(session: Session, workspace_id: int, signal: dict[str, Any],
            transitions: list[TransitionEvent], settings: AlertSettings | None = None) -> int:
    """Write the deliveries the signal's rules call for (no commit); returns how many."""
    live = [t for t in transitions if not t.backfill]
    if not live:
        return 0
    settings = settings or current()
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for rule in list_rules(session, workspace_id, str(signal["id"])):
        wanted = [t for t in live if t.kind in RULE_KINDS[rule.on]]
        wanted = _outside_cooldown(session, rule, wanted, now)
        rows.extend(_rows(rule, signal, wanted, settings, now, start=len(rows)))
    if rows:
        session.execute(sa.insert(Delivery), rows)
    return len(rows)


def _outside_cooldown(session: Session, rule: AlertRule, wanted: list[TransitionEvent],
                      now: datetime) -> list[TransitionEvent]:
    """The transitions whose entity had no (unfailed) alert from this rule in the cooldown; one
    per entity when a cooldown is set."""
    if rule.cooldown_days == 0 or not wanted:
        return wanted
    since = now - timedelta(days=rule.cooldown_days)
    recent: set[str] = set()
    keys = sorted({t.entity_key for t in wanted})
    for chunk in chunks(keys):
        recent.update(session.scalars(sa.select(Delivery.entity_key).where(
            Delivery.workspace_id == rule.workspace_id, Delivery.rule_id == rule.id,
            Delivery.entity_key.in_(chunk), Delivery.created_at > since,
            Delivery.status != "failed")))
    kept: list[TransitionEvent] = []
    for t in wanted:
        if t.entity_key not in recent:
            recent.add(t.entity_key)
            kept.append(t)
    return kept


def _rows(rule: AlertRule, signal: dict[str, Any], wanted: list[TransitionEvent],
          settings: AlertSettings, now: datetime, start: int) -> Iterable[dict[str, Any]]:
    """One delivery per transition, or one digest per kind when more than the threshold."""
    base = settings.base_url
    for kind in ("entered", "exited"):
        group = [t for t in wanted if t.kind == kind]
        entities = [_entity(rule, t, base) for t in group]
        if len(group) > rule.digest_threshold:
            payload = messages.digest_payload(TYPES[kind], signal, entities, now,
                                              messages.signal_url(base, str(signal["id"])))
            keyed = [(f"signal:{signal['id']}", payload)]
        else:
            keyed = [(t.entity_key, messages.transition_payload(
                TYPES[kind], signal, e, t.values, t.at, e["url"])) for t, e in zip(group, entities)]
        for key, payload in keyed:
            yield _row(rule, str(signal["id"]), TYPES[kind], key, payload, now, start)
            start += 1


def _entity(rule: AlertRule, t: TransitionEvent, base_url: str) -> dict[str, Any]:
    owner = t.dimensions.get(rule.owner_dimension) if rule.owner_dimension else None
    return {"type": t.entity_type, "id": t.entity_id, "name": t.entity_name, "owner": owner,
            "url": messages.entity_url(base_url, t.entity_type, t.entity_id)}


def _row(rule: AlertRule, signal_id: str, type_: str, entity_key: str, payload: dict[str, Any],
         now: datetime, position: int) -> dict[str, Any]:
    # created_at orders an entity's deliveries: one microsecond apart keeps the batch's order
    created = now + timedelta(microseconds=position)
    return {"workspace_id": rule.workspace_id, "id": message_id(), "destination_id":
            rule.destination_id, "rule_id": rule.id, "signal_id": signal_id, "type": type_,
            "entity_key": entity_key[:300], "payload": payload, "status": "pending",
            "attempts": 0, "next_attempt_at": created, "retry_until": created + RETRY_FOR,
            "created_at": created}
