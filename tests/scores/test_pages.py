"""The scores pages through the test client with a signed-in member, on both databases: the
editor's preview, saving, the accounts list sorted and filtered by the score (and its CSV),
the account page's breakdown adding up to the score shown."""
from __future__ import annotations

import csv
import io
import json
import re

import sqlalchemy as sa

from correlated.scores.models import ScoreModel, ScoreValue

from ..pages import signed_in
from ..signals.test_evaluate import load
from .test_api import MODEL


def form_of(token: str, model: dict) -> dict[str, str]:
    return {"name": model["name"], "object": "account", "inputs": json.dumps(model["inputs"]),
            "tiers": json.dumps(model["tiers"]), "csrf_token": token}


def test_edit_preview_save_sort_and_explain(app, db, tenant, fresh_g):
    load(db.session, tenant.workspace)
    client, token = signed_in(app, tenant.admin_email, tenant.admin_password)
    editor = client.get("/scores/new")
    assert editor.status_code == 200 and b"score-pickers" in editor.data
    assert b"vendor/plotly.min.js" in editor.data
    # Nothing loaded from elsewhere (a bare "cdn" check failed on a random CSRF token).
    assert re.search(rb'(?:src|href)="(?:https?:)?//', editor.data) is None
    form = form_of(token, MODEL)
    preview = client.post("/scores/preview", data=form).get_json()
    assert preview["count"] == 12 and preview["figure"]["data"][0]["type"] == "bar"
    assert preview["figure"]["data"][0]["y"] == [b["count"] for b in preview["buckets"]]
    # A weight changed: the distribution moves.
    heavier = json.loads(form["inputs"])
    heavier[0]["weight"] = 10
    moved = client.post("/scores/preview", data={**form, "inputs": json.dumps(heavier)}).get_json()
    assert moved["buckets"] != preview["buckets"]
    bad = client.post("/scores/preview", data={**form, "inputs": '[{"source": {"field": "x"}}]'})
    assert bad.status_code == 422 and "inputs[0].source" in bad.get_json()["problems"][0]
    refused = client.post("/scores/new", data={**form, "tiers": "not json"})
    assert refused.status_code == 422 and b"tiers" in refused.data
    saved = client.post("/scores/new", data=form)
    assert saved.status_code == 302
    model = db.session.scalars(sa.select(ScoreModel)).one()
    values = {v.entity_id: v for v in db.session.scalars(sa.select(ScoreValue))}
    assert len(values) == 12  # scored at once on save
    assert "Fit" in client.get("/scores").get_data(as_text=True)
    assert client.get(f"/scores/{model.id}").status_code == 200

    page = client.get(f"/accounts?sort=score:{model.id}&dir=desc").get_data(as_text=True)
    shown = [float(x) for x in re.findall(r'data-score="([0-9.]+)"', page)]
    assert len(shown) == 12 and shown == sorted(shown, reverse=True)
    assert shown == sorted((v.score for v in values.values()), reverse=True)
    tier_a = client.get(f"/accounts?field=tier:{model.id}&op=eq&value=A").get_data(as_text=True)
    assert len(re.findall(r'data-score="', tier_a)) == sum(v.tier == "A" for v in values.values())
    exported = client.get(f"/accounts?format=csv&sort=score:{model.id}").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert {r["Account ID"]: (float(r["Fit"]), r["Fit tier"]) for r in rows} == {
        k: (round(v.score, 2), v.tier) for k, v in values.items()}

    account = client.get("/accounts/a5").get_data(as_text=True)
    card = account[account.index('id="entity-scores"'):]
    points = [float(x) for x in re.findall(r'<td class="num">([0-9.]+)</td></tr>', card)]
    total = float(re.search(r'<th colspan="3">Score</th><th class="num">([0-9.]+)</th>', card)
                  .group(1))
    assert len(points) == 4 and round(sum(points), 1) == total
    assert total == round(values["a5"].score, 1)
    assert "missing (counts 0)" in card and "score-history-1" in card
    deleted = client.post(f"/scores/{model.id}/delete", data={"csrf_token": token})
    assert deleted.status_code == 302 and not db.session.scalars(sa.select(ScoreModel)).all()
