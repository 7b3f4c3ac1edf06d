"""Accounts: the filtered list (and its CSV), and one account's page."""
from __future__ import annotations

from flask import abort, render_template, request

from ..analytics import charts, listing, rollups
from ..ingest import fields as catalog_fields
from ..ingest.catalog import load_keys
from ..extensions import db
from ..models import Account
from .blueprint import bp
from .common import workspace_id
from .lists import Column, prepare, serve_list

KEY_DIMENSIONS = ["plan", "industry", "employees", "arr"]
ACCOUNT_USERS = 10  # per page of an account's users (the rest: the filtered users list)
METRICS = [
    Column("users", "Users", "METRIC", True),
    Column("active_users_7d", "Active 7d", "METRIC", True),
    Column("active_users_30d", "Active 30d", "METRIC", True),
    Column("events_30d", "Events 30d", "METRIC", True),
    Column("trend", "Trend", "PCT", True),
    Column("last_seen", "Last seen", "DATE_METRIC", True),
]


@bp.get("/accounts")
def accounts():
    """Every live account with its key dimensions and metrics; search, filter, sort, export."""
    from .scores import score_columns

    scores = score_columns("account")
    # With scores the default columns leave out industry, so the list still fits a 1280 px
    # laptop (the Columns picker adds it back).
    defaults = [k for k in KEY_DIMENSIONS if k != "industry"] if scores else KEY_DIMENSIONS
    page = prepare(listing.ACCOUNTS, "account", "dashboard.accounts", defaults,
                   scores + METRICS)
    result = serve_list(page, "accounts.csv", [("account_id", "Account ID"), ("name", "Name")])
    if not isinstance(result, listing.Page):
        return result
    # The ranges the events breakdown uses, offered by the filter for numbers and dates.
    page.ranges = rollups.account_buckets(db.session, workspace_id(),
                                          {c.key: (c.type, c.format) for c in page.dimensions})
    return render_template("accounts/list.html", page=page, result=result)


def get_account(account_id: str) -> Account:
    """The live account of the signed-in member's workspace, or 404."""
    account = db.session.get(Account, (workspace_id(), account_id))
    if account is None or account.archived_at is not None:
        abort(404, "No such account in this workspace.")
    return account


@bp.get("/accounts/<path:account_id>")
def account(account_id: str):
    """Who the account is (dimensions) and what it does (metrics, charts, latest events)."""
    ws = workspace_id()
    acc = get_account(account_id)
    metrics = rollups.metrics_record(rollups.account_metrics(db.session, ws, [acc.account_id]),
                                     acc.account_id)
    users_page = max(1, request.args.get("users_page", 1, type=int))
    users, user_count = listing.account_users(db.session, ws, acc.account_id, ACCOUNT_USERS,
                                              offset=(users_page - 1) * ACCOUNT_USERS)
    events = rollups.event_days(db.session, ws, days=90, account_id=acc.account_id)
    weekly = rollups.weekly_active_users(db.session, ws, acc.account_id)
    latest = rollups.latest_events(db.session, ws, 20, account_id=acc.account_id)
    return render_template(
        "accounts/detail.html", account=acc, metrics=metrics,
        dimensions=labelled_dimensions(ws, "account", acc.traits),
        users=users, user_count=user_count, users_page=users_page,
        users_pages=max(1, -(-user_count // ACCOUNT_USERS)), users_per_page=ACCOUNT_USERS,
        events_chart=charts.stacked_bars(rollups.by_day(events, 90)),
        weekly_chart=charts.bars(weekly, "Active users", weekly=True),
        event_table=rollups.event_summary(events),
        latest=latest,
        names={"users": rollups.user_emails(db.session, ws, {e.user_id for e in latest
                                                             if e.user_id})},
    )


def labelled_dimensions(ws: int, obj: str, traits: dict) -> list[dict]:
    """Every dimension of a record: catalog fields first (default, then custom), labelled;
    hidden fields left out. Only the record's own keys are read from the catalog."""
    catalog = load_keys(db.session, ws, obj, traits or {})
    ordered = sorted(set(catalog.values()), key=lambda f: (not f.is_default, f.label.lower()))
    out = []
    seen = {f.key for f in ordered if f.hidden}
    for f in ordered:
        if f.hidden:
            continue
        if f.key in (traits or {}):
            out.append({"key": f.key, "label": f.label, "type": f.type,
                        "format": f.display_format, "custom": not f.is_default,
                        "value": traits[f.key]})
            seen.add(f.key)
    for key, value in sorted((traits or {}).items()):
        if key not in seen:  # not in the catalog (yet): still shown, labelled from the key
            out.append({"key": key, "label": catalog_fields.label_for(key), "type": "STRING",
                        "format": None, "custom": True, "value": value})
    return out
