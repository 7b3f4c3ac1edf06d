"""The demo workspace's scores: Health (Vitally-style bands on activity) and Fit (who the
account is), both computed on the demo data."""
from __future__ import annotations

from sqlalchemy.orm import Session

from ..models import utcnow
from . import evaluate, service

HEALTH = {
    "name": "Health",
    "inputs": [
        {"label": "Days since last seen", "group": "engagement", "weight": 2,
         "source": {"metric": "days_since_last_seen"},
         "transform": {"type": "bands", "bands": [{"max": 1, "points": 1},
                                                  {"max": 3, "points": 0.6},
                                                  {"max": 7, "points": 0.3}, {"points": 0}]}},
        {"label": "Users active in 30 days", "group": "engagement", "weight": 2,
         "source": {"metric": "active_user_share", "window_days": 30},
         "transform": {"type": "bands", "bands": [{"max": 0.3, "points": 0},
                                                  {"max": 0.85, "points": 0.5}, {"points": 1}]}},
        {"label": "Events, 30 days vs the 30 before", "group": "trend", "weight": 3,
         "source": {"metric": "events", "window_days": 30, "compare": "previous"},
         "transform": {"type": "bands", "bands": [{"max": -40, "points": 0},
                                                  {"max": -20, "points": 0.3},
                                                  {"max": -5, "points": 0.6},
                                                  {"max": 10, "points": 0.85}, {"points": 1}]}},
    ],
    "tiers": [{"name": "healthy", "min": 85}, {"name": "at risk", "min": 60},
              {"name": "critical", "min": 0}],
}
FIT = {
    "name": "Fit",
    "inputs": [
        {"label": "Plan", "group": "fit", "weight": 2, "source": {"field": "plan"},
         "transform": {"type": "map", "values": {"enterprise": 1, "pro": 0.7, "starter": 0.4},
                       "default": 0.1}},
        {"label": "Employees", "group": "fit", "weight": 1, "source": {"field": "employees"},
         "transform": {"type": "bands", "bands": [{"max": 50, "points": 0.2},
                                                  {"max": 250, "points": 0.5},
                                                  {"max": 1000, "points": 0.8}, {"points": 1}]}},
        {"label": "ARR", "group": "fit", "weight": 1.5, "source": {"field": "arr"},
         "transform": {"type": "minmax", "clip": [5, 95]}},
    ],
    "tiers": [{"name": "A", "min": 70}, {"name": "B", "min": 45}, {"name": "C", "min": 25},
              {"name": "D", "min": 0}],
}
DEMO_SCORES = [HEALTH, FIT]


def add_demo_scores(session: Session, workspace_id: int) -> list[str]:
    """Create Health and Fit and compute them (the summaries are fresh); their ids."""
    ids = [service.create(session, workspace_id, body).id for body in DEMO_SCORES]
    session.commit()
    now = utcnow()
    for model_id in ids:
        evaluate.run(session, workspace_id, model_id, now, force=True)
    return ids
