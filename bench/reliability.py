"""Long crash and concurrency runs on SQLite and PostgreSQL; writes docs/reliability.md.

    python bench/reliability.py [--senders 6] [--batches 60]

Uses the same scenarios as tests/test_reliability.py, at a larger size.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import date
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from correlated import MIGRATIONS, create_app  # noqa: E402
from correlated.auth import issue_key  # noqa: E402
from correlated.extensions import db  # noqa: E402
from correlated.workspaces import create_workspace  # noqa: E402
from tests.reliability_scenarios import concurrency_scenario, crash_scenario  # noqa: E402
from bench_databases import recreate_postgres  # noqa: E402

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SECTION = "## Crash and concurrency runs"


def fresh_database(kind: str, folder: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{folder / 'bench.db'}"
    return recreate_postgres(sa.engine.make_url(POSTGRES).set(database="correlated_reliability"))


def prepare(url: str) -> str:
    from flask_migrate import upgrade

    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade(directory=str(MIGRATIONS))
        ws = create_workspace(db.session, "reliability")
        _key, plaintext = issue_key(db.session, ws, "bench")
        db.session.commit()
        db.engine.dispose()
    return plaintext


def row(kind: str, scenario: str, f) -> str:
    return (f"| {kind} | {scenario} | {f.events_sent:,} | {f.requests:,} | {f.retries:,} | "
            f"{f.worker_kills} | {f.server_kills} | {f.status_5xx} | {f.events_lost} | "
            f"{f.events_duplicated} | {f.profiles_wrong} | {f.seconds} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--senders", type=int, default=6)
    parser.add_argument("--batches", type=int, default=60)
    args = parser.parse_args()
    rows = []
    for kind in ("sqlite", "postgresql"):
        for name, run in (("kill -9", crash_scenario), ("8 concurrent senders", concurrency_scenario)):
            with tempfile.TemporaryDirectory() as tmp:
                url = fresh_database(kind, Path(tmp))
                key = prepare(url)
                senders = args.senders if run is crash_scenario else 8
                figures = run(url, key, Path(tmp), senders=senders, batches=args.batches)
                rows.append(row(kind, name, figures))
                print(rows[-1], flush=True)
    write(rows, args)


def write(rows: list[str], args) -> None:
    path = ROOT / "docs" / "reliability.md"
    text = path.read_text() if path.exists() else "# Reliability\n"
    table = "\n".join([
        SECTION, "",
        f"Measured {date.today().isoformat()} on the development machine (2 cores) with "
        f"`python bench/reliability.py --senders {args.senders} --batches {args.batches}`: "
        "gunicorn with 2 workers (kill -9) or 4 workers (concurrency) on a loopback port; "
        "senders post 40-event batches and 5-row account/user upserts over the REST API and "
        "re-send whatever did not get a 2xx.", "",
        "| database | scenario | events sent | requests | re-sends | worker kills | server kills "
        "| 5xx | events lost | events doubled | profiles not at last ack | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows, ""])
    head, _, rest = text.partition(SECTION)
    tail = rest.split("\n## ", 1)[1] if "\n## " in rest else ""
    path.write_text(head.rstrip() + "\n\n" + table + ("\n## " + tail if tail else ""))


if __name__ == "__main__":
    main()
