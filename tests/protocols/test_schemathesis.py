"""schemathesis against /api/v1/openapi.json, through the WSGI app, on SQLite and PostgreSQL.

Every documented operation gets generated requests: valid ones (the answer must be documented:
status code, content type and body schema) and invalid ones (never a 5xx).
"""
from __future__ import annotations

import os
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                               response_schema_conformance,
                                               status_code_conformance)

from correlated.ingest.engine import ingest

from ..summary import show

EXAMPLES = int(os.environ.get("CORRELATED_SCHEMATHESIS_EXAMPLES", "15"))
CONFORMANCE = [not_a_server_error, status_code_conformance, content_type_conformance,
               response_schema_conformance]
CHECKS = {GenerationMode.POSITIVE: CONFORMANCE, GenerationMode.NEGATIVE: [not_a_server_error]}
CALLS: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def report(request):
    """Print how many generated requests each operation got, once the module is done."""
    yield
    show(request.config, f"schemathesis: {sum(CALLS.values())} requests, "
         + ", ".join(f"{label} {n}" for label, n in sorted(CALLS.items())))


@pytest.fixture
def schema(app, db, tenant):
    """The API's own document, loaded from the app, with a few records to find and delete."""
    ingest(db.session, tenant.workspace, "account", "upsert", [{"account_id": "a1", "name": "A"}])
    ingest(db.session, tenant.workspace, "user", "upsert",
           [{"user_id": "u1", "email": "ada@acme.io", "account_id": "a1"}])
    ingest(db.session, tenant.workspace, "event", "insert", [
        {"event_id": "e1", "event": "Signed In", "user_id": "u1", "timestamp": 1714557600}])
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


def operations(schema) -> list:
    """Every operation of the document (one that schemathesis cannot load fails here), but the
    document itself, which schemathesis leaves out when it loaded the schema from there."""
    found = [result.ok() for result in schema.get_all_operations()]
    documented = [(method, path) for path, item in schema.raw_schema["paths"].items()
                  for method in item if method in ("get", "post", "put", "patch", "delete")
                  and path != schema.location]
    assert len(found) == len(documented) >= 14, [op.label for op in found]
    return found


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["valid", "invalid"])
def test_every_operation_answers_as_documented(schema, tenant, mode):
    for operation in operations(schema):
        assert run(operation, mode, tenant.headers) > 0, operation.label


def run(operation, mode: GenerationMode, headers: dict[str, str]) -> int:
    """Up to EXAMPLES generated requests to one operation, each checked; how many were sent."""
    label = f"{mode.value} {operation.label}"
    before = CALLS[label]

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case) -> None:
        CALLS[label] += 1
        case.call_and_validate(headers=headers, checks=CHECKS[mode])

    check()
    return CALLS[label] - before
