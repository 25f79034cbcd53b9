"""The OpenAPI schema tells the truth: schemathesis drives every operation of the live schema
(/api/schema/, served by the app in-process: no network) as admin, responder and viewer, with a
fixed seed and a bounded number of examples, and finds no server error and no response that
disagrees with the schema (body, content type, headers).

The examples do not depend on the role (fixed seed, same schema): they are drawn once per operation
and sent as each role in turn, each role on rows of its own. Drawing them is most of the cost.

Path parameters are pointed at real rows (an incident with its timeline and a revision, a runbook
with a run, a review with an action item, a problem report, an ops request), so responses carry
the nullable fields the schema must declare; bodies and query strings are generated.
"""

import copy

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, seed
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.core import NOT_SET
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
)

from incidents.models import ActionItem, PostIncidentReview, ProblemReport, TimelineEvent
from ops import approvals
from opsportal.throttles import AnonThrottle, UserThrottle
from runbooks.models import RunbookRun
from tests.factories import IncidentFactory, ServiceFactory, UserFactory
from tests.runbooks.conftest import auto, make_runbook, manual

pytestmark = pytest.mark.django_db
SEED = 20261129
EXAMPLES = 8  # per operation and role: 63 operations x 3 roles stay within a couple of minutes on 2 cores
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance, response_headers_conformance]


@pytest.fixture
def seeded(db):
    """One of everything the API lists, with its optional links empty where they can be."""
    alice = UserFactory(username="alice", role="responder")
    root = UserFactory(username="root", role="admin")
    service = ServiceFactory(slug="checkout", public=True)
    incident = IncidentFactory(title="Checkout 502", services=[service], created_by=alice)
    note = TimelineEvent.add_note(incident, by=alice, body="Looking at nginx")
    note.edit(by=alice, version=note.version, body="Looking at the nginx upstream")
    incident.transition_to("resolved", by=alice)
    review = PostIncidentReview.objects.get(incident=incident)
    item = ActionItem.objects.create(review=review, title="Validate nginx config in CI", created_by=alice)
    report = ProblemReport.submit(name="Jane", email="jane@example.com", description="Pay button spins forever.")
    runbook = make_runbook(
        steps=[manual("Look at the dashboard"), auto("host_check", {"check": "disk"}, safety="change")]
    )
    run = RunbookRun.start(runbook, by=alice)
    asked = approvals.ask("cache_flush", {}, by=root, reason="poisoned entries")
    ids = {
        "/api/action-items/": {"id": item.pk},
        "/api/incidents/": {"id": incident.pk, "incident_pk": incident.pk},
        "/api/incidents/{incident_pk}/timeline/": {"incident_pk": incident.pk, "id": note.pk},
        "/api/ops/requests/": {"id": asked.pk},
        "/api/reports/": {"id": report.pk},
        "/api/reviews/": {"id": review.pk},
        "/api/runbooks/": {"id": runbook.pk},
        "/api/runs/": {"id": run.pk, "step_id": run.step_runs.order_by("order").first().pk},
    }
    return {"root": root, "alice": alice, "ids": ids}


@pytest.fixture
def tokens(seeded):
    """A real API token for each role, taken the way scripts take one."""
    from rest_framework.test import APIClient

    users = {
        "admin": seeded["root"],
        "responder": seeded["alice"],
        "viewer": UserFactory(username="vic", role="viewer"),
    }
    taken = {}
    for role, user in users.items():
        answer = APIClient().post("/api/auth/token/", {"username": user.username, "password": "pw-for-tests"})
        assert answer.status_code == 200, answer.content
        taken[role] = answer.json()["token"]
    return taken


@pytest.fixture
def api_schema(seeded, tokens, monkeypatch):
    # Requests go through the WSGI app in this thread, inside the test's transaction: like Django's
    # test client, keep the connection open across them (Django closes it at the end of a request).
    # After `tokens`: the test client reconnects the handlers when its own request ends.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    # The generic per-user and per-IP API throttles would answer 429 long before the examples end;
    # the public report form's own throttles stay (a 429 there is part of the contract).
    monkeypatch.setattr(UserThrottle, "rate", "1000000/minute", raising=False)
    monkeypatch.setattr(AnonThrottle, "rate", "1000000/minute", raising=False)
    yield schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture(scope="module")
def drawn() -> dict:
    """Each operation's examples (by label), drawn by the first role that reaches it."""
    return {}


def _examples(operation, drawn: dict) -> list:
    """The operation's examples, drawn as the per-role loop used to draw them (same seed, settings and
    strategy), as fresh copies bound to this test's operation."""
    if operation.label not in drawn:
        cases = []

        @seed(SEED)
        @hypothesis_settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def draw(case):
            cases.append(case)

        draw()
        drawn[operation.label] = cases
    copies = []
    for case in drawn[operation.label]:
        parts = (case.path_parameters, case.headers, case.cookies, case.query, case.body, case._meta)
        path_parameters, headers, cookies, query, body, meta = copy.deepcopy(parts, {id(NOT_SET): NOT_SET})
        copies.append(
            operation.Case(
                method=case.method,
                path_parameters=path_parameters,
                headers=headers,
                cookies=cookies,
                query=query,
                body=body,
                media_type=case.media_type,
                multipart_content_types=case.multipart_content_types,
                _meta=meta,
            )
        )
    return copies


def _real_ids(case, ids: dict) -> None:
    """Point the path at seeded rows: the most specific prefix of the operation's path wins."""
    path = case.operation.path
    for prefix in sorted(ids, key=len, reverse=True):
        if prefix in path:
            for name in case.path_parameters or {}:
                if name in ids[prefix]:
                    case.path_parameters[name] = ids[prefix][name]
            return


@pytest.mark.parametrize("role", ["admin", "responder", "viewer"])
def test_every_operation_keeps_its_contract(role, api_schema, tokens, seeded, drawn):
    headers = {"Authorization": f"Token {tokens[role]}"}
    operations, failures = [], []
    for loaded in api_schema.get_all_operations():
        operation = loaded.ok()
        operations.append(operation.label)
        examples = _examples(operation, drawn)
        assert examples, operation.label
        for case in examples:
            _real_ids(case, seeded["ids"])
            try:
                case.call_and_validate(headers=headers, checks=CHECKS)
            except (AssertionError, BaseExceptionGroup) as exc:  # every operation is tried; all are reported
                failures.append(f"{operation.label} as {role}: {exc}")
                break  # its first failing example, as the search stops at the first failure
    assert len(operations) >= 60, operations  # the whole API, not a part that happened to load
    assert not failures, "\n\n".join(failures)
