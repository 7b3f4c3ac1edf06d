"""The scores REST API through the test client, on both databases."""
from __future__ import annotations

import csv
import io

import pytest

from correlated.analytics import summaries
from correlated.models import utcnow
from correlated.scores import evaluate

from ..signals.test_evaluate import load
from . import reference

BANDS = {"type": "bands", "bands": [{"max": 1, "points": 1}, {"max": 5, "points": 0.5},
                                    {"points": 0}]}
MODEL = {"name": "Fit", "inputs": [
    {"source": {"field": "plan"}, "transform": {"type": "map", "values": {
        "enterprise": 1, "pro": 0.6}, "default": 0.2}, "weight": 2, "group": "fit"},
    {"source": {"field": "employees"}, "transform": {"type": "minmax", "clip": [5, 95]},
     "group": "fit", "label": "Employees"},
    {"source": {"field": "region"}, "transform": {"type": "map", "values": {"EMEA": 1}}},
    {"source": {"metric": "days_since_last_seen"}, "transform": BANDS, "weight": 3,
     "group": "engagement"}],
    "tiers": [{"name": "A", "min": 70}, {"name": "B", "min": 40}, {"name": "C", "min": 0}]}


def compute(db, tenant, model_id: str) -> int | None:
    """What the worker does: summaries first, then the model."""
    summaries.ensure_fresh(db.session, tenant.id)
    return evaluate.run(db.session, tenant.id, model_id, utcnow())


def post(client, tenant, path, body):
    return client.post(f"/api/v1/scores{path}", json=body, headers=tenant.headers)


def test_create_read_change_delete_and_the_account(client, db, tenant):
    load(db.session, tenant.workspace)
    made = post(client, tenant, "", MODEL)
    assert made.status_code == 201
    model = made.get_json()
    assert model["computed_at"] is None and model["inputs"] == MODEL["inputs"]
    assert compute(db, tenant, model["id"]) == 12
    got = client.get(f"/api/v1/scores/{model['id']}", headers=tenant.headers).get_json()
    assert got["computed_at"] is not None
    listed = client.get("/api/v1/scores", headers=tenant.headers).get_json()["data"]
    assert [m["id"] for m in listed] == [model["id"]]
    account = client.get("/api/v1/accounts/a5", headers=tenant.headers).get_json()
    [score] = account["scores"]
    want = reference.scores(db.session, tenant.id, MODEL, utcnow())["a5"]
    assert score["name"] == "Fit" and score["tier"] == want["tier"]
    assert score["score"] == pytest.approx(want["score"], abs=0.05)
    parts = score["contributions"]
    assert [p["label"] for p in parts] == ["plan", "Employees", "region", "days_since_last_seen"]
    assert [p["group"] for p in parts] == ["fit", "fit", None, "engagement"]
    assert round(sum(p["points"] for p in parts), 1) == score["score"]  # adds up exactly
    assert parts[2] == {"label": "region", "group": None, "weight": 1, "value": None,
                        "points": 0, "missing": True}  # a5 has no region: missing, counted 0
    changed = client.patch(f"/api/v1/scores/{model['id']}", json={"name": "Fit 2"},
                           headers=tenant.headers)
    assert changed.status_code == 200 and changed.get_json()["name"] == "Fit 2"
    assert client.delete(f"/api/v1/scores/{model['id']}", headers=tenant.headers).status_code == 204
    assert client.get(f"/api/v1/scores/{model['id']}", headers=tenant.headers).status_code == 404
    assert client.get("/api/v1/accounts/a5", headers=tenant.headers).get_json()["scores"] == []


@pytest.mark.parametrize("item, part, message", [
    ({"source": {"field": "plann"}, "transform": {"type": "map", "values": {"x": 1}}}, "source",
     "unknown account field 'plann'"),
    ({"source": {"field": "plan"}, "transform": "minmax"}, "transform",
     "minmax does not fit a text source (use map)"),
    ({"source": {"field": "employees"}, "transform": {"type": "minmax", "clip": [90, 10]}},
     "transform", "clip must be [low, high] percentiles"),
    ({"source": {"field": "employees"}, "transform": {"type": "bands", "bands": [
        {"max": 5, "points": 1}, {"max": 3, "points": 0}]}}, "transform", "bands[1] must be"),
    ({"source": {"field": "plan"}, "transform": {"type": "map", "values": {"pro": 2}}},
     "transform", "map needs values: {value: points from 0 to 1}"),
    ({"source": {"field": "renewal_date"}, "transform": {"type": "recency"}}, "transform",
     "recency needs days"),
    ({"source": {"metric": "events", "window_days": 400}, "transform": "minmax"}, "source",
     "window_days must be a whole number from 1 to 365"),
    ({"source": {"signal": "missing"}, "transform": "bool"}, "source",
     "no signal with id 'missing'"),
    ({"source": {"field": "employees"}, "transform": "minmax", "weight": 0}, "weight",
     "must be a number above 0"),
    ({"source": {"field": "employees"}, "transform": "sqrt"}, "transform", "give a transform"),
])
def test_bad_inputs_are_422_naming_the_input_and_part(client, db, tenant, item, part, message):
    load(db.session, tenant.workspace)
    body = {**MODEL, "inputs": [MODEL["inputs"][0], item]}
    response = post(client, tenant, "", body)
    assert response.status_code == 422, response.get_json()
    problems = response.get_json()["problems"]
    assert [(p["input"], p["field"]) for p in problems] == [(1, part)]
    assert message in problems[0]["message"]
    assert f"inputs[1].{part}: " in response.get_json()["error"]
    assert post(client, tenant, "/preview", body).status_code == 422


def test_bad_tiers_and_empty_models(client, db, tenant):
    load(db.session, tenant.workspace)
    response = post(client, tenant, "", {"name": "", "inputs": [], "tiers": [{"name": "A"}]})
    assert response.status_code == 422
    assert {p["field"] for p in response.get_json()["problems"]} == {"name", "inputs", "tiers"}


def test_preview_distribution_tiers_and_extremes(client, db, tenant):
    load(db.session, tenant.workspace)
    response = post(client, tenant, "/preview", {k: v for k, v in MODEL.items() if k != "name"})
    assert response.status_code == 200
    got = response.get_json()
    want = reference.scores(db.session, tenant.id, MODEL, utcnow())
    assert got["count"] == 12 and sum(b["count"] for b in got["buckets"]) == 12
    assert [b["from"] for b in got["buckets"]] == list(range(0, 100, 10))
    expected = [0] * 10
    for w in want.values():
        expected[min(int(w["score"] // 10), 9)] += 1
    assert [b["count"] for b in got["buckets"]] == expected
    tiers = {t["name"]: t["count"] for t in got["tiers"]}
    assert tiers == {name: sum(1 for w in want.values() if w["tier"] == name)
                     for name in ("A", "B", "C")}
    ranked = sorted(want, key=lambda a: (-want[a]["score"], a))
    assert [r["id"] for r in got["top"]] == ranked[:10]
    assert got["bottom"][0]["id"] == ranked[-1] and len(got["bottom"]) == 10
    assert got["top"][0]["name"].startswith("Acme")
    assert client.get("/api/v1/scores", headers=tenant.headers).get_json()["data"] == []


def test_values_pages_and_csv(client, db, tenant):
    load(db.session, tenant.workspace)
    model = post(client, tenant, "", MODEL).get_json()
    compute(db, tenant, model["id"])
    seen, cursor = [], None
    while True:
        page = client.get(f"/api/v1/scores/{model['id']}/values",
                          query_string={"limit": 5, **({"cursor": cursor} if cursor else {})},
                          headers=tenant.headers).get_json()
        seen += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [r["id"] for r in seen] == sorted(f"a{i}" for i in range(12))
    for row in seen:
        assert round(sum(p["points"] for p in row["contributions"]), 1) == row["score"]
    tier_a = client.get(f"/api/v1/scores/{model['id']}/values?tier=A",
                        headers=tenant.headers).get_json()["data"]
    assert {r["id"] for r in tier_a} == {r["id"] for r in seen if r["tier"] == "A"}
    response = client.get(f"/api/v1/scores/{model['id']}/values?format=csv",
                          headers=tenant.headers)
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["id"] for r in rows] == [r["id"] for r in seen]
    assert float(rows[0]["score"]) == seen[0]["score"]
    assert rows[0]["Employees (points)"] and "region (value)" in rows[0]
    bad = client.get(f"/api/v1/scores/{model['id']}/values?cursor=nope", headers=tenant.headers)
    assert bad.status_code == 400


def test_another_workspace_sees_nothing(client, db, tenant, other_tenant):
    load(db.session, tenant.workspace)
    model = post(client, tenant, "", MODEL).get_json()
    for method, path in [("get", ""), ("patch", ""), ("delete", ""), ("get", "/values")]:
        response = getattr(client, method)(f"/api/v1/scores/{model['id']}{path}", json={},
                                           headers=other_tenant.headers)
        assert response.status_code == 404
    assert client.get("/api/v1/scores", headers=other_tenant.headers).get_json()["data"] == []
