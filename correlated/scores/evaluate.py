"""Computing a score model: every entity's score, tier and contributions upserted in SQL (only
those that changed are written), and today's history row per entity, in one transaction.

`compute` works in the caller's transaction; `run` is one unit of work: the model's lock
(PostgreSQL advisory lock; SQLite has one writer), a check that it is still due, compute,
commit. A process killed mid-way leaves the previous values intact.
"""
from __future__ import annotations

import logging
import zlib
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, scoped_session

from .. import database
from ..signals.compile import BASES
from ..signals.evaluate import as_aware, inputs_at, signals_evaluated
from .compile import select
from .definitions import Model, ModelError, parse
from .models import ScoreHistory, ScoreModel, ScoreValue, signals_used

log = logging.getLogger("correlated.scores")
LOCK_SPACE = 0x5C07  # the advisory-lock namespace of score computations


def model_of(session: Session, model: ScoreModel) -> Model:
    """The stored model, parsed (validated when saved; a field deleted since is reported)."""
    return parse(session, model.workspace_id, {"name": model.name, "object": model.object,
                                               "inputs": model.inputs, "tiers": model.tiers})


def compute(session: Session, model: ScoreModel, now: datetime) -> int:
    """Write the model's values as of `now` and today's history; the entities scored.

    Set-based and written only where something changed: the model's SELECT upserted straight
    into score_values (a row is rewritten only when its score, tier or contributions moved, so
    a recompute after a small sync writes the few entities it moved, not 10k JSON values),
    the values of entities archived since removed, and today's history upserted from the
    values the same way. A value's computed_at is when it last changed; the model's
    computed_at is when all of them were last computed."""
    ws, today = model.workspace_id, now.date()
    parsed = model_of(session, model)
    bind = session.connection()
    query = select(bind, ws, parsed, today, now).subquery("s")
    values, history = ScoreValue.__table__, ScoreHistory.__table__
    insert = sqlite_insert if database.is_sqlite(bind) else pg_insert
    mine = (values.c.workspace_id == ws, values.c.model_id == model.id)
    fixed = (sa.literal(ws), sa.literal(model.id))
    # WHERE true: SQLite needs a WHERE in an INSERT ... SELECT ... ON CONFLICT (its parser).
    upsert = insert(values).from_select(
        ["workspace_id", "model_id", "entity_id", "score", "tier", "contributions", "computed_at"],
        sa.select(*fixed, query.c.entity_id, query.c.score, query.c.tier, query.c.contributions,
                  sa.literal(now, sa.DateTime(timezone=True))).where(sa.true()))
    new = upsert.excluded
    session.execute(upsert.on_conflict_do_update(
        index_elements=["workspace_id", "model_id", "entity_id"],
        set_={"score": new.score, "tier": new.tier, "contributions": new.contributions,
              "computed_at": new.computed_at},
        where=sa.or_(values.c.score.is_distinct_from(new.score),
                     values.c.tier.is_distinct_from(new.tier),
                     values.c.contributions.is_distinct_from(new.contributions))))
    table, key_name, _ = BASES[parsed.object]
    live = sa.select(table.c[key_name]).where(table.c.workspace_id == ws,
                                              table.c.archived_at.is_(None))
    session.execute(sa.delete(values).where(*mine, values.c.entity_id.not_in(live)))
    # The last computation of a day is that day's history row: today's follows the values,
    # the other days stay.
    upsert = insert(history).from_select(
        ["workspace_id", "model_id", "entity_id", "day", "score", "tier"],
        sa.select(*fixed, values.c.entity_id, sa.literal(today, sa.Date), values.c.score,
                  values.c.tier).where(*mine))
    new = upsert.excluded
    session.execute(upsert.on_conflict_do_update(
        index_elements=["workspace_id", "model_id", "entity_id", "day"],
        set_={"score": new.score, "tier": new.tier},
        where=sa.or_(history.c.score.is_distinct_from(new.score),
                     history.c.tier.is_distinct_from(new.tier))))
    session.execute(sa.delete(history).where(
        history.c.workspace_id == ws, history.c.model_id == model.id, history.c.day == today,
        history.c.entity_id.not_in(live)))
    model.computed_at = now
    session.flush()
    return session.scalar(sa.select(sa.func.count()).select_from(values).where(*mine)) or 0


def is_due(model: ScoreModel, inputs: datetime | None, today: date,
           evaluated: dict[str, datetime | None]) -> bool:
    """Whether the model's inputs changed since it was computed: never computed, edited, new
    data, a new day (windows and recency move), or a signal it uses evaluated since."""
    if model.computed_at is None:
        return True
    last = as_aware(model.computed_at)
    if as_aware(model.updated_at) > last or last.date() < today:
        return True
    if inputs is not None and (model.inputs_at is None
                               or as_aware(inputs) > as_aware(model.inputs_at)):
        return True
    return any((evaluated.get(sid) or last) > last for sid in signals_used(model.inputs))


def run(session: Session, workspace_id: int, model_id: str, now: datetime,
        force: bool = False) -> int | None:
    """Compute one model in its own transaction if it is due (or `force`); the entities scored,
    None when it was not (another worker holds it, or it is current)."""
    if isinstance(session, scoped_session):
        session = session()
    try:
        if not database.try_locked_write(session, LOCK_SPACE, lock_key(workspace_id, model_id)):
            return None
        model = session.get(ScoreModel, (workspace_id, model_id), populate_existing=True)
        inputs = inputs_at(session, workspace_id)
        if model is None or not (force or is_due(model, inputs, now.date(),
                                                 signals_evaluated(session, workspace_id))):
            session.rollback()
            return None
        scored = compute(session, model, now)
        model.inputs_at = inputs
        session.commit()
        return scored
    except BaseException:
        session.rollback()
        raise


def lock_key(workspace_id: int, model_id: str) -> int:
    """A 32-bit advisory-lock key for one model."""
    return zlib.crc32(f"score:{workspace_id}:{model_id}".encode()) - 2**31


def compute_due(session: Session, now: datetime) -> int:
    """`worker.JOBS` entry (after the signals' evaluations, whose members scores read): compute
    every model whose inputs changed; how many were computed."""
    done = 0
    models = session.execute(sa.select(ScoreModel.workspace_id, ScoreModel.id)
                             .order_by(ScoreModel.workspace_id, ScoreModel.id)).all()
    by_workspace: dict[int, list[str]] = {}
    for ws, mid in models:
        by_workspace.setdefault(ws, []).append(mid)
    for ws, ids in by_workspace.items():
        inputs, evaluated = inputs_at(session, ws), signals_evaluated(session, ws)
        for mid in ids:
            model = session.get(ScoreModel, (ws, mid))
            # A read first: most polls find nothing due and take no lock nor write transaction.
            if model is None or not is_due(model, inputs, now.date(), evaluated):
                continue
            try:
                done += run(session, ws, mid, now) is not None
            except ModelError as exc:  # a field deleted since: the others are still scored
                log.warning("score %s of workspace %s not computed: %s", mid, ws, exc)
    session.rollback()  # end the read transaction: the next poll sees new commits (SQLite)
    return done
