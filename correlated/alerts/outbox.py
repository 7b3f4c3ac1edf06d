"""Sending the outbox: claim due deliveries, send each, record the attempt, schedule retries.

At-least-once: a claim only moves a delivery's `next_attempt_at` a lease ahead, so a worker
that dies before recording the answer leaves the delivery to be claimed again, with the same
`webhook-id`. An entity's deliveries to one destination go out in order: a delivery waits while
an earlier one to the same destination for the same entity is still pending.
"""
from __future__ import annotations

import random
import time
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased, scoped_session

from .. import database
from ..models import utcnow
from . import messages, senders
from .destinations import Invalid, signing_secrets, storable
from .models import Delivery, DeliveryAttempt, Destination, aware
from .rules import RETRY_FOR
from .senders import Job, Outcome
from .settings import AlertSettings, current

BATCH = 50
BACKOFF_BASE = 10.0  # seconds before the first retry; doubles each attempt
BACKOFF_CAP = 3600.0


def backoff(attempts: int) -> float:
    """Exponential backoff with jitter (half fixed, half random) after `attempts` tries."""
    delay = min(BACKOFF_BASE * 2 ** max(attempts - 1, 0), BACKOFF_CAP)
    return delay / 2 + random.uniform(0, delay / 2)


def deliver_due(session: Session, now: datetime | None = None,
                settings: AlertSettings | None = None, limit: int = BATCH) -> int:
    """Send up to `limit` due deliveries of every workspace; returns how many were attempted."""
    settings = settings or current()
    now = now or utcnow()
    # Claim no more than can be sent within the lease at the timeout per send, so another
    # worker never takes over a delivery this one is still going to send.
    jobs = claim(session, now, settings.lease, max(1, min(limit, _per_lease(settings))))
    started = time.monotonic()
    sent = 0
    for job in jobs:
        if sent and time.monotonic() - started + settings.timeout > settings.lease:
            break  # its lease could run out mid-send: leave it to be claimed again
        record(session, job, senders.send(job, settings, utcnow()), now)
        sent += 1
    return sent


def _per_lease(settings: AlertSettings) -> int:
    return int(settings.lease // max(settings.timeout, 0.001)) - 1


def _unblocked() -> Any:
    """No earlier pending delivery of the same entity to the same destination."""
    earlier = aliased(Delivery)
    return ~sa.exists().where(
        earlier.workspace_id == Delivery.workspace_id,
        earlier.destination_id == Delivery.destination_id,
        earlier.entity_key == Delivery.entity_key, earlier.status == "pending",
        sa.or_(earlier.created_at < Delivery.created_at,
               sa.and_(earlier.created_at == Delivery.created_at, earlier.id < Delivery.id)))


def _begin_write(session: Session) -> None:
    """SQLite takes the write lock up front (unless the caller already opened a transaction)."""
    actual = session() if isinstance(session, scoped_session) else session
    if not actual.in_transaction():
        session.connection(execution_options=database.WRITE_TRANSACTION)


def claim(session: Session, now: datetime, lease: float, limit: int = BATCH,
          ids: list[str] | None = None) -> list[Job]:
    """Take due deliveries for one lease and commit; SKIP LOCKED keeps PostgreSQL workers apart."""
    _begin_write(session)
    query = (sa.select(Delivery, Destination)
             .join(Destination, sa.and_(Destination.workspace_id == Delivery.workspace_id,
                                        Destination.id == Delivery.destination_id))
             .where(Delivery.status == "pending", Delivery.next_attempt_at <= now, _unblocked())
             .order_by(Delivery.next_attempt_at).limit(limit))
    if ids is not None:
        query = query.where(Delivery.id.in_(ids))
    if not database.is_sqlite(session.connection()):
        query = query.with_for_update(skip_locked=True, of=Delivery)
    found = session.execute(query).all()
    jobs = [Job(d.workspace_id, d.id, d.type, d.payload, dest.kind, dest.target,
                signing_secrets(dest, now)) for d, dest in found]
    if jobs:
        # message ids are unique on their own (random), so the id alone finds each row
        session.execute(sa.update(Delivery).where(Delivery.id.in_([j.id for j in jobs])).values(
            next_attempt_at=now + timedelta(seconds=lease), attempts=Delivery.attempts + 1))
    session.commit()
    return jobs


def record(session: Session, job: Job, outcome: Outcome, now: datetime) -> None:
    """Keep the attempt and move the delivery on: delivered, failed, or due again later."""
    _begin_write(session)
    delivery = session.get(Delivery, (job.workspace_id, job.id))
    if delivery is None:  # its destination was deleted meanwhile
        session.rollback()
        return
    status, error = outcome.status, outcome.error
    if status == "retry":
        wait = backoff(delivery.attempts) if outcome.retry_after is None else outcome.retry_after
        delivery.next_attempt_at = now + timedelta(seconds=wait)
        if delivery.next_attempt_at > aware(delivery.retry_until):
            retried = aware(delivery.retry_until) > aware(delivery.created_at)  # tests are not
            status = "failed"
            error = f"{error}; gave up after 24 h of retries" if retried else error
    if status != "retry":
        delivery.status, delivery.finished_at = status, now
    session.add(DeliveryAttempt(
        workspace_id=job.workspace_id, delivery_id=job.id, at=now, status=status,
        response_code=outcome.code, response_snippet=_bounded(outcome.snippet),
        error=_bounded(error), duration_ms=outcome.duration_ms))
    session.commit()


def _bounded(text: str | None) -> str | None:
    return text[:1024] if text else text


# --- by hand: resend, send a test -----------------------------------------------------------

def resend(session: Session, workspace_id: int, delivery_id: str,
           now: datetime | None = None) -> Delivery | None:
    """Queue a failed delivery again (same webhook-id, 24 more hours of retries); caller commits."""
    delivery = session.get(Delivery, (workspace_id, delivery_id)) \
        if storable(delivery_id) else None
    if delivery is None:
        return None
    if delivery.status != "failed":
        raise Invalid({"status": f"only a failed delivery can be re-sent (this one is "
                                 f"{delivery.status})"})
    now = now or utcnow()
    delivery.status, delivery.finished_at = "pending", None
    delivery.next_attempt_at, delivery.retry_until = now, now + RETRY_FOR
    return delivery


def send_test(session: Session, destination: Destination,
              settings: AlertSettings | None = None) -> Delivery:
    """Send a test message now, once, without retries; the delivery records how it went."""
    settings = settings or current()
    now = utcnow()
    delivery = Delivery(workspace_id=destination.workspace_id, destination_id=destination.id,
                        type="test", entity_key=f"test:{destination.id}",
                        payload=messages.test_payload(destination.name, now, settings.base_url),
                        next_attempt_at=now, retry_until=now, created_at=now)
    session.add(delivery)
    session.commit()
    key = (delivery.workspace_id, delivery.id)
    for job in claim(session, now, settings.lease, ids=[delivery.id]):
        record(session, job, senders.send(job, settings, utcnow()), now)
    return session.get(Delivery, key)


# --- reading ----------------------------------------------------------------------------------

def list_deliveries(session: Session, workspace_id: int, status: str | None = None,
                    destination_id: str | None = None, limit: int = 50
                    ) -> list[tuple[Delivery, list[DeliveryAttempt]]]:
    """The latest deliveries, newest first, each with its attempts (two queries)."""
    query = sa.select(Delivery).where(Delivery.workspace_id == workspace_id)
    if status:
        query = query.where(Delivery.status == status)
    if destination_id:
        query = query.where(Delivery.destination_id == destination_id)
    found = list(session.scalars(query.order_by(Delivery.created_at.desc(), Delivery.id.desc())
                                 .limit(limit)))
    return with_attempts(session, workspace_id, found)


def with_attempts(session: Session, workspace_id: int, deliveries: list[Delivery]
                  ) -> list[tuple[Delivery, list[DeliveryAttempt]]]:
    """Each delivery with its attempts, oldest first (one query)."""
    attempts: dict[str, list[DeliveryAttempt]] = {d.id: [] for d in deliveries}
    if deliveries:
        for attempt in session.scalars(sa.select(DeliveryAttempt).where(
                DeliveryAttempt.workspace_id == workspace_id,
                DeliveryAttempt.delivery_id.in_(list(attempts))).order_by(DeliveryAttempt.at)):
            attempts[attempt.delivery_id].append(attempt)
    return [(d, attempts[d.id]) for d in deliveries]


def failed_count(session: Session, workspace_id: int) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(Delivery).where(
        Delivery.workspace_id == workspace_id, Delivery.status == "failed",
        Delivery.type != "test"))


def delivery_to_dict(delivery: Delivery, attempts: list[DeliveryAttempt]) -> dict[str, Any]:
    keys = ("id", "destination_id", "rule_id", "signal_id", "type", "entity_key", "status",
            "attempts", "next_attempt_at", "created_at", "finished_at", "payload")
    return {**{k: getattr(delivery, k) for k in keys}, "attempt_log": [
        {k: getattr(a, k) for k in ("at", "status", "response_code", "response_snippet", "error",
                                    "duration_ms")} for a in attempts]}
