"""The demo workspace's signals: one per category, each with members in the demo data."""
from __future__ import annotations

from sqlalchemy.orm import Session

from ..models import utcnow
from . import evaluate, service

DEMO_SIGNALS = [
    {"name": "Expansion: busy free and starter teams", "category": "expansion",
     "conditions": [{"field": "plan", "op": "in", "value": ["free", "starter"]},
                    {"metric": "active_users", "window_days": 7, "op": "gte", "value": 4},
                    {"metric": "events", "event": "report_created", "window_days": 30,
                     "op": "gte", "value": 8}]},
    {"name": "Conversion: free accounts inviting colleagues", "category": "conversion",
     "conditions": [{"field": "plan", "op": "eq", "value": "free"},
                    {"metric": "events", "event": "invite_sent", "window_days": 30, "op": "gte",
                     "value": 1}]},
    {"name": "Churn risk: activity down by half", "category": "churn_risk",
     "conditions": [{"metric": "events", "window_days": 60, "offset_days": 30, "op": "gte",
                     "value": 20},
                    {"metric": "events", "window_days": 30, "compare": "previous", "op": "lte",
                     "value": -50}]},
    {"name": "New account onboarding", "category": "other", "match": "any",
     "conditions": [{"field": "created_at", "op": "within_days", "value": 90},
                    {"metric": "active_days", "window_days": 14, "op": "between",
                     "value": [1, 3]}]},
]


def add_demo_signals(session: Session, workspace_id: int) -> list[str]:
    """Create the four demo signals and back-fill them; their ids."""
    ids = [service.create(session, workspace_id, body).id for body in DEMO_SIGNALS]
    session.commit()
    for signal_id in evaluate.order(session, workspace_id):
        evaluate.run(session, workspace_id, signal_id, utcnow(), force=True)
    return ids
