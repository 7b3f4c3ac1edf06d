"""Evaluating a signal: its members now, diffed against the stored members in SQL, written as
transitions and membership changes in one transaction with the hooks' writes.

`evaluate` does the work in the caller's transaction; `run` is one unit of work: it takes the
signal's lock (PostgreSQL advisory lock; SQLite has one writer), checks that the evaluation is
still due, evaluates, commits. A process killed mid-way leaves the previous state intact.
"""
from __future__ import annotations

import zlib
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, scoped_session

from .. import database
from ..database import chunks
from ..models import SummaryState
from . import TRANSITION_HOOKS, pending
from .compile import empty_json, select
from .definitions import Definition, dependencies, parse
from .models import Signal, SignalMember, Transition
from .pending import in_scope

EVAL = sa.table("signal_eval", sa.column("entity_id", sa.String), sa.column("matched", sa.Boolean),
                sa.column("vals", sa.JSON))
LOCK_SPACE = 0x5167  # the advisory-lock namespace of signal evaluations
CREATE_EVAL = {
    "postgresql": "CREATE TEMP TABLE IF NOT EXISTS signal_eval (entity_id varchar(255) PRIMARY "
                  "KEY, matched boolean NOT NULL, vals jsonb) ON COMMIT DELETE ROWS",
    "sqlite": "CREATE TEMP TABLE IF NOT EXISTS signal_eval (entity_id TEXT PRIMARY KEY, "
              "matched BOOLEAN NOT NULL, vals JSON)",
}


def definition_of(session: Session, signal: Signal) -> Definition:
    """The stored definition, parsed (it was validated when saved; a field deleted since is
    reported the same way)."""
    return parse(session, signal.workspace_id, {
        "name": signal.name, "category": signal.category, "object": signal.object,
        "match": signal.match, "conditions": signal.conditions})


def names_of(session: Session, workspace_id: int) -> dict[str, str]:
    """Signal and score model ids -> names (the labels of their conditions)."""
    from ..scores.models import ScoreModel

    names = dict(session.execute(sa.select(ScoreModel.id, ScoreModel.name)
                                 .where(ScoreModel.workspace_id == workspace_id)).all())
    names.update(session.execute(sa.select(Signal.id, Signal.name)
                                 .where(Signal.workspace_id == workspace_id)).all())
    return names


def evaluate(session: Session, signal: Signal, now: datetime,
             only: sa.Select | None = None) -> list[Transition]:
    """Bring the signal's members up to date as of `now`, in the caller's transaction; returns
    the transitions written (flagged backfill on its first evaluation). With `only` (a SELECT
    of ids, see pending.scope), just those entities are evaluated; the other members stay."""
    ws, backfill = signal.workspace_id, signal.evaluated_at is None
    bind = session.connection()
    query = select(bind, ws, definition_of(session, signal), now.date(), now,
                   names_of(session, ws), only).subquery("q")
    bind.exec_driver_sql(CREATE_EVAL[bind.dialect.name])
    session.execute(sa.delete(EVAL))
    is_member = _member_of(signal)
    session.execute(sa.insert(EVAL).from_select(
        ["entity_id", "matched", "vals"],
        sa.select(query.c.entity_id, query.c.matched, query.c.vals)
        .where(sa.or_(query.c.matched == sa.true(), is_member(query.c.entity_id)))))
    ids = _write_transitions(session, signal, now, backfill, is_member, only)
    _apply_membership(session, signal, now, backfill, is_member, only)
    signal.evaluated_at = now
    session.flush()
    transitions = [t for part in chunks(ids) for t in session.scalars(
        sa.select(Transition).where(Transition.id.in_(part)).order_by(Transition.id))]
    for hook in TRANSITION_HOOKS if transitions else ():
        hook(session, ws, signal, transitions)
    return transitions


def _member_of(signal: Signal):
    def test(entity: Any) -> Any:
        return sa.exists().where(SignalMember.workspace_id == signal.workspace_id,
                                 SignalMember.signal_id == signal.id,
                                 SignalMember.entity_id == entity)
    return test


def _write_transitions(session: Session, signal: Signal, now: datetime, backfill: bool,
                       is_member, only: sa.Select | None) -> list[int]:
    """Insert the entries and exits; their ids."""
    columns = ["workspace_id", "signal_id", "entity_id", "kind", "at", "backfill", "values"]
    fixed = (sa.literal(signal.workspace_id), sa.literal(signal.id))
    entered = (sa.select(*fixed, EVAL.c.entity_id, sa.literal("entered"), sa.literal(now),
                         sa.literal(backfill), EVAL.c.vals)
               .where(EVAL.c.matched == sa.true(), ~is_member(EVAL.c.entity_id)))
    m = SignalMember.__table__
    exited = (sa.select(*fixed, m.c.entity_id, sa.literal("exited"), sa.literal(now),
                        sa.literal(backfill),
                        sa.func.coalesce(EVAL.c.vals, empty_json(session.connection())))
              .select_from(m.outerjoin(EVAL, EVAL.c.entity_id == m.c.entity_id))
              .where(m.c.workspace_id == signal.workspace_id, m.c.signal_id == signal.id,
                     in_scope(m.c.entity_id, only),
                     sa.or_(EVAL.c.entity_id.is_(None), EVAL.c.matched == sa.false()))
              .order_by(m.c.entity_id))
    table = Transition.__table__
    ids = []
    for rows in (entered.order_by(EVAL.c.entity_id), exited):
        ids += session.scalars(sa.insert(table).from_select(columns, rows)
                               .returning(table.c.id)).all()
    return sorted(ids)


def _apply_membership(session: Session, signal: Signal, now: datetime, backfill: bool,
                      is_member, only: sa.Select | None) -> None:
    m = SignalMember.__table__
    still = sa.exists().where(EVAL.c.entity_id == m.c.entity_id, EVAL.c.matched == sa.true())
    session.execute(sa.delete(m).where(m.c.workspace_id == signal.workspace_id,
                                       m.c.signal_id == signal.id,
                                       in_scope(m.c.entity_id, only), ~still))
    new = (sa.select(sa.literal(signal.workspace_id), sa.literal(signal.id), EVAL.c.entity_id,
                     sa.literal(now), sa.literal(backfill), EVAL.c.vals)
           .where(EVAL.c.matched == sa.true(), ~is_member(EVAL.c.entity_id)))
    session.execute(sa.insert(m).from_select(
        ["workspace_id", "signal_id", "entity_id", "entered_at", "backfill", "values"], new))


# --- one evaluation as a unit of work -------------------------------------------------------

def inputs_at(session: Session, workspace_id: int) -> datetime | None:
    """When the workspace's summaries last took new data (what evaluations are compared with)."""
    return session.scalar(sa.select(SummaryState.refreshed_at)
                          .where(SummaryState.workspace_id == workspace_id))


def is_due(signal: Signal, inputs: datetime | None, today: date,
           evaluated: dict[str, datetime | None]) -> bool:
    """Whether the signal's inputs changed since its last evaluation: never evaluated, edited,
    new data, a new day (windows move), or a signal it uses evaluated (or a score it uses
    computed) after it. `evaluated` holds both, by id."""
    if signal.evaluated_at is None:
        return True
    last = as_aware(signal.evaluated_at)
    if as_aware(signal.updated_at) > last or last.date() < today:
        return True
    if inputs is not None and (signal.inputs_at is None
                               or as_aware(inputs) > as_aware(signal.inputs_at)):
        return True
    uses = pending.uses_of(signal) | pending.scores_used(signal)
    return any((evaluated.get(dep) or last) > last for dep in uses)


def as_aware(value: datetime) -> datetime:
    from ..ingest.writes import as_utc

    return as_utc(value)


def run(session: Session, workspace_id: int, signal_id: str, now: datetime,
        force: bool = False) -> list[Transition] | None:
    """Evaluate one signal in its own transaction if it is due (or `force`); None when it was
    not (another worker holds it, or it is current)."""
    if isinstance(session, scoped_session):
        session = session()
    try:
        if not database.try_locked_write(session, LOCK_SPACE, lock_key(workspace_id, signal_id)):
            return None
        signal = session.get(Signal, (workspace_id, signal_id), populate_existing=True)
        inputs = inputs_at(session, workspace_id)
        if signal is None or not (force or is_due(signal, inputs, now.date(),
                                                   _evaluated(session, workspace_id))):
            session.rollback()
            return None
        only = None if force else pending.scope(session, signal, inputs, now.date())
        transitions = evaluate(session, signal, now, only)
        signal.inputs_at = inputs
        session.flush()
        pending.forget(session, workspace_id)
        session.commit()
        return transitions
    except BaseException:
        session.rollback()
        raise


def _evaluated(session: Session, workspace_id: int) -> dict[str, datetime | None]:
    """Signal ids -> last evaluation, and score model ids -> last computation."""
    return {**scores_computed(session, workspace_id), **signals_evaluated(session, workspace_id)}


def signals_evaluated(session: Session, workspace_id: int) -> dict[str, datetime | None]:
    """Signal ids -> when each was last evaluated."""
    return {sid: (as_aware(at) if at else None) for sid, at in session.execute(
        sa.select(Signal.id, Signal.evaluated_at).where(Signal.workspace_id == workspace_id))}


def scores_computed(session: Session, workspace_id: int) -> dict[str, datetime | None]:
    from ..scores.models import ScoreModel

    return {mid: (as_aware(at) if at else None) for mid, at in session.execute(
        sa.select(ScoreModel.id, ScoreModel.computed_at)
        .where(ScoreModel.workspace_id == workspace_id))}


def lock_key(workspace_id: int, signal_id: str) -> int:
    """A 32-bit advisory-lock key for one signal."""
    return zlib.crc32(f"{workspace_id}:{signal_id}".encode()) - 2**31


def order(session: Session, workspace_id: int) -> list[str]:
    """The workspace's signal ids, each after the signals it uses."""
    from .definitions import in_order

    return in_order(dependencies(session, workspace_id))
