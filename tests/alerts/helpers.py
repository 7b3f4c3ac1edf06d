"""Building destinations, rules and transitions through the services (no signals needed)."""
from __future__ import annotations

from datetime import datetime, timezone

from correlated.alerts import TransitionEvent, enqueue
from correlated.alerts.destinations import create_destination
from correlated.alerts.rules import create_rule
from correlated.alerts.settings import current

SIGNAL = {"id": "sig_expansion", "name": "Expansion", "object": "account"}


def destination(db, tenant, kind: str, target: str, name: str = "dest"):
    found = create_destination(db.session, tenant.id, name, kind, target, current())
    db.session.commit()
    return found


def rule(db, tenant, dest, **settings):
    found = create_rule(db.session, tenant.id, {"signal_id": SIGNAL["id"],
                                                "destination_id": dest.id, **settings})
    db.session.commit()
    return found


def entered(account_id: str, kind: str = "entered", **extra) -> TransitionEvent:
    return TransitionEvent(
        entity_type="account", entity_id=account_id, entity_name=f"{account_id.title()} Inc",
        kind=kind, at=extra.pop("at", datetime.now(timezone.utc)),
        values=extra.pop("values", {"active_users_7d": 5, "plan": "free"}),
        dimensions=extra.pop("dimensions", {"owner_email": f"rep@{account_id}.example"}), **extra)


def push(db, tenant, *transitions, signal=SIGNAL) -> int:
    count = enqueue(db.session, tenant.id, signal, list(transitions))
    db.session.commit()
    return count
