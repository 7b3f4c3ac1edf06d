"""Users: the filtered list (and its CSV), and one user's page."""
from __future__ import annotations

from flask import abort, render_template

from ..analytics import charts, listing, rollups
from ..extensions import db
from ..models import Account, User
from .blueprint import bp
from .accounts import labelled_dimensions
from .common import workspace_id
from .lists import Column, prepare, serve_list

# The name shows under the email; with these the list fits a 1280 px laptop (more: Columns).
KEY_DIMENSIONS = ["role", "title"]
TIMELINE = 40  # events on a user's page
METRICS = [
    Column("active_days_30d", "Active days 30d", "METRIC", True),
    Column("events_30d", "Events 30d", "METRIC", True),
    Column("trend", "Trend", "PCT", True),
    Column("last_seen", "Last seen", "DATE_METRIC", True),
]


@bp.get("/users")
def users():
    """Every live user with dimensions, account and metrics; search, filter, sort, export."""
    from .scores import score_columns

    page = prepare(listing.USERS, "user", "dashboard.users", KEY_DIMENSIONS,
                   score_columns("user") + METRICS)
    result = serve_list(page, "users.csv", [("user_id", "User ID"), ("email", "Email"),
                                            ("account_id", "Account ID")])
    if not isinstance(result, listing.Page):
        return result
    names = rollups.account_names(db.session, workspace_id(),
                                  {r["account_id"] for r in result.rows if r["account_id"]})
    return render_template("users/list.html", page=page, result=result, account_names=names)


@bp.get("/users/<path:user_id>")
def user(user_id: str):
    """One user: dimensions, account, activity chart and a timeline of events."""
    ws = workspace_id()
    person = db.session.get(User, (ws, user_id))
    latest = rollups.latest_events(db.session, ws, TIMELINE, user_id=user_id)
    if person is None and latest:  # events arrived before the user sync sent the user
        person = not_synced(user_id, latest)
    if person is None or person.archived_at is not None:
        abort(404, "No such user in this workspace.")
    account = db.session.get(Account, (ws, person.account_id)) if person.account_id else None
    if account is not None and account.archived_at is not None:
        account = None
    metrics = rollups.user_metrics(db.session, ws, [user_id])
    record = rollups.metrics_record(metrics, user_id)
    events = rollups.event_days(db.session, ws, days=90, user_id=user_id)
    return render_template(
        "users/detail.html", person=person, account=account, metrics=record,
        dimensions=labelled_dimensions(ws, "user", person.traits),
        activity_chart=charts.stacked_bars(rollups.by_day(events, 90)),
        event_table=rollups.event_summary(events),
        timeline=timeline(latest), timeline_limit=TIMELINE, synced=person in db.session,
    )


def not_synced(user_id: str, events: list) -> User:
    """A stand-in (never added to the session) for a user known only from their events; the
    account is the one their newest event names, if any."""
    account_id = next((e.account_id for e in events if e.account_id), None)
    return User(user_id=user_id, email=None, account_id=account_id, traits={})


def timeline(events: list) -> list[tuple[str, list]]:
    """Events grouped by UTC day, newest day first."""
    days: list[tuple[str, list]] = []
    for event in events:
        label = event.timestamp.strftime("%A, %b %-d, %Y")
        if not days or days[-1][0] != label:
            days.append((label, []))
        days[-1][1].append(event)
    return days
