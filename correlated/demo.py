"""A believable synthetic B2B data set, written through the ingestion engine.

Accounts follow one of four trajectories (growing, steady, declining, churned) so the dashboards
have something to say: who is expanding, who is slipping away.
"""
from __future__ import annotations

import math
import random
import zlib
from contextlib import nullcontext
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Callable, Iterable, Iterator

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .ingest.engine import ingest
from .models import Workspace

PREFIXES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne",
            "Wonka", "Tyrell", "Cyberdyne", "Soylent", "Massive", "Aperture", "Black Mesa",
            "Pied Piper", "Dunder", "Sterling", "Oscorp", "Gringotts", "Monarch", "Nakatomi",
            "Blue Sun", "Virtucon", "Gekko", "Prestige", "Bluth", "Krusty", "Duff", "Ollivander"]
SUFFIXES = ["Labs", "Systems", "Analytics", "Health", "Logistics", "Capital", "Foods", "Energy",
            "Robotics", "Media", "Retail", "Cloud", "Bio", "Motors", "Studios", "Partners"]
INDUSTRIES = ["Software", "Healthcare", "Logistics", "Financial Services", "Retail", "Media",
              "Manufacturing", "Education", "Energy"]
REGIONS = ["North America", "EMEA", "APAC", "LATAM"]
PLANS = [("free", 0, 0.15), ("starter", 6_000, 0.35), ("pro", 30_000, 0.35),
         ("enterprise", 150_000, 0.15)]
TRAJECTORIES = [("growing", 0.3), ("steady", 0.4), ("declining", 0.2), ("churned", 0.1)]
FIRST = ["Ada", "Grace", "Alan", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances",
         "Edsger", "Radia", "Tim", "Hedy", "Guido", "Katherine", "John", "Sophie", "Yukihiro",
         "Annie", "Donald", "Shafi", "Leslie", "Anita", "Vint", "Marissa", "Satya"]
LAST = ["Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie",
        "Allen", "Dijkstra", "Perlman", "Berners-Lee", "Lamarr", "van Rossum", "Johnson",
        "McCarthy", "Wilson", "Matsumoto", "Easley", "Knuth", "Goldwasser", "Lamport", "Borg"]
ROLES = [("admin", "Head of Operations", 0.1), ("manager", "Team Lead", 0.25),
         ("analyst", "Data Analyst", 0.4), ("viewer", "Account Executive", 0.25)]
FEATURES = ["dashboards", "reports", "alerts", "exports", "segments", "integrations"]
# (event name, mean per active day, extra properties)
EVENTS = [("sign_in", 1.0), ("feature_used", 1.6), ("report_created", 0.25),
          ("invite_sent", 0.04), ("export_downloaded", 0.15)]
BATCH = 1000

Progress = Callable[[int, str], Any]


def load_demo(session: Session, workspace: Workspace, accounts: int = 60, days: int = 120,
              seed: int = 7, progress: Progress | None = None,
              today: date | None = None, with_signals: bool = True) -> dict[str, int]:
    """Generate and ingest the data set (and the demo signals and scores); returns how many accounts, users and events it wrote."""
    rng = random.Random(seed)
    today = today or datetime.now(timezone.utc).date()
    account_rows = [_account(rng, i, today) for i in range(accounts)]
    # The trajectory shapes the generated activity; it is not a dimension of the account.
    trajectories = {a["account_id"]: a.pop("_trajectory") for a in account_rows}
    user_rows = [u for a in account_rows for u in _users(rng, a, today)]
    _write(session, workspace, "account", "upsert", account_rows, progress)
    _write(session, workspace, "user", "upsert", user_rows, progress)
    total = _write(session, workspace, "event", "insert",
                   _events(rng, user_rows, trajectories, days, today, seed), progress,
                   estimate=int(len(user_rows) * days * 0.9))
    analyze(session)
    if with_signals:
        from .analytics.summaries import ensure_fresh
        from .signals.demo import add_demo_signals

        from .scores.demo import add_demo_scores

        ensure_fresh(session, workspace.id, today)
        add_demo_signals(session, workspace.id)
        add_demo_scores(session, workspace.id)
    return {"accounts": len(account_rows), "users": len(user_rows), "events": total}


def analyze(session: Session) -> None:
    """Refresh the query planner's statistics after a bulk load (SQLite never does it alone)."""
    session.execute(sa.text("ANALYZE"))
    session.commit()


def _write(session: Session, workspace: Workspace, obj: str, op: str, rows: Iterable[dict],
           progress: Progress | None, estimate: int | None = None) -> int:
    if estimate is None:
        rows = list(rows)
        estimate = len(rows)
    written = 0
    with (progress(estimate, f"{obj}s") if progress else nullcontext()) as bar:
        for chunk in _chunks(iter(rows)):
            # Not a request: no ingest-log entry (the log shows what senders sent).
            result = ingest(session, workspace, obj, op, chunk, protocol=None)
            if result.rejected:
                raise RuntimeError(f"demo data rejected: {result.rejected[0].reason}")
            written += len(chunk)
            if bar is not None:
                bar.update(len(chunk))
    return written


def _chunks(rows: Iterator[dict]) -> Iterator[list[dict]]:
    chunk: list[dict] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == BATCH:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _pick(rng: random.Random, weighted: list[tuple]) -> tuple:
    return rng.choices(weighted, weights=[w[-1] for w in weighted])[0]


def _account(rng: random.Random, i: int, today: date) -> dict[str, Any]:
    name = f"{PREFIXES[i % len(PREFIXES)]} {SUFFIXES[(i * 7 + i // len(PREFIXES)) % len(SUFFIXES)]}"
    plan, base_arr, _ = _pick(rng, PLANS)
    employees = int(rng.lognormvariate(5 if plan != "enterprise" else 7.5, 1.0)) + 5
    created = today - timedelta(days=rng.randint(150, 1400))
    return {
        "account_id": f"acc_{i + 1:04d}",
        "name": name,
        "domain": name.lower().replace(" ", "") + ".example",
        "plan": plan,
        "industry": rng.choice(INDUSTRIES),
        "employees": employees,
        "region": rng.choice(REGIONS),
        "arr": round(base_arr * rng.uniform(0.6, 1.8), -2) if base_arr else 0,
        "owner": rng.choice(["Dana Scully", "Fox Mulder", "Walter Skinner", "Monica Reyes"]),
        "created_at": datetime.combine(created, time(9), tzinfo=timezone.utc).isoformat(),
        "renewal_date": (today + timedelta(days=rng.randint(10, 360))).isoformat(),
        "_trajectory": _pick(rng, TRAJECTORIES)[0],
    }


def _users(rng: random.Random, account: dict[str, Any], today: date) -> list[dict[str, Any]]:
    count = max(2, min(40, int(math.sqrt(account["employees"]) * rng.uniform(0.5, 1.5))))
    users = []
    for j in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        role, title, _ = _pick(rng, ROLES)
        users.append({
            "user_id": f"{account['account_id']}_u{j + 1:02d}",
            "email": f"{first.lower()}.{last.lower().replace(' ', '')}{j}@{account['domain']}",
            "account_id": account["account_id"],
            "first_name": first, "last_name": last, "role": role, "title": title,
            "created_at": account["created_at"],
        })
    return users


def _activity(trajectory: str, progress: float) -> float:
    """Chance that a user is active on a day, `progress` running 0 -> 1 over the period."""
    return {
        "growing": 0.25 + 0.5 * progress,
        "steady": 0.5,
        "declining": 0.65 - 0.5 * progress,
        "churned": 0.55 if progress < 0.6 else 0.02,
    }[trajectory]


def _events(rng: random.Random, users: list[dict], trajectories: dict[str, str], days: int,
            today: date, seed: int) -> Iterator[dict[str, Any]]:
    start = today - timedelta(days=days - 1)
    now = datetime.now(timezone.utc)
    serial = 0
    for offset in range(days):
        day = start + timedelta(days=offset)
        weekend = day.weekday() >= 5
        for user in users:
            engagement = 0.4 + (zlib.crc32(user["user_id"].encode()) % 60) / 100
            chance = _activity(trajectories[user["account_id"]], offset / max(days - 1, 1))
            chance *= engagement * (0.25 if weekend else 1.0)
            if rng.random() >= chance:
                continue
            for name, mean in EVENTS:
                for _ in range(_poisson(rng, mean)):
                    serial += 1
                    at = datetime.combine(day, time(rng.randint(7, 19), rng.randint(0, 59),
                                                    rng.randint(0, 59)), tzinfo=timezone.utc)
                    if at > now:
                        continue
                    event = {"event_id": f"demo-{seed}-{serial}", "event": name,
                             "user_id": user["user_id"], "account_id": user["account_id"],
                             "timestamp": at.isoformat()}
                    if name == "feature_used":
                        event["feature"] = rng.choice(FEATURES)
                    if name == "report_created":
                        event["widgets"] = rng.randint(1, 12)
                    yield event


def _poisson(rng: random.Random, mean: float) -> int:
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
