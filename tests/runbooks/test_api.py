"""The runbooks and runs API: the contract, every endpoint for every role, bad input."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from runbooks.models import Runbook, RunbookRun
from tests.factories import IncidentFactory, ServiceFactory
from tests.runbooks.conftest import SEEDS, auto, make_runbook, manual

pytestmark = pytest.mark.django_db

RUNBOOK_FIELDS = {"id", "slug", "title", "alert_names", "services", "severity", "version", "sections", "steps"}
STEP_FIELDS = {
    "id",
    "order",
    "section",
    "title",
    "instructions",
    "command",
    "kind",
    "action",
    "params",
    "safety",
    "expected",
}
RUN_FIELDS = {"id", "runbook", "runbook_version", "incident", "target", "state", "started_by", "steps"}
STEP_RUN_FIELDS = {
    "id", "step", "state", "attempts", "output", "result", "started_at", "finished_at", "completed_by",
    "approved_by", "note",
}  # fmt: skip
EXPECTED = {
    "anonymous": (403, 403, 403),
    "viewer": (200, 403, 403),
    "responder": (200, 403, None),
    "admin": (200, None, None),
}


@pytest.fixture
def runbook(target):
    return make_runbook(
        steps=[manual("Look at the dashboard"), auto("http_check", {"path": "/health"}, title="Health")],
        services=[target],
        alert_names=["APIHigh5xxRate"],
    )


def test_runbook_contract_fields(api, runbook):
    body = api.get(f"/api/runbooks/{runbook.pk}/").json()
    assert set(body) >= RUNBOOK_FIELDS
    assert body["alert_names"] == ["APIHigh5xxRate"] and body["services"] == ["checkout-api"] and body["version"] == 1
    assert body["sections"][0]["title"] == "Diagnostics" and body["sections"][0]["kind"] == "diagnostics"
    assert [set(s) >= STEP_FIELDS for s in body["steps"]] == [True, True]
    health = body["steps"][1]
    assert (health["kind"], health["action"], health["safety"], health["section"]) == (
        "automated",
        "http_check",
        "read_only",
        0,
    )
    assert health["params"]["path"] == "/health"
    listing = api.get("/api/runbooks/").json()
    assert listing["count"] == 1 and set(listing["results"][0]) >= RUNBOOK_FIELDS


def test_runbook_filters(api, runbook):
    make_runbook("Cache checks", steps=[manual("x")])
    titles = lambda query: [r["title"] for r in api.get(f"/api/runbooks/?{query}").json()["results"]]  # noqa: E731
    assert titles("alert=apihigh5xxrate") == ["Checkout checks"]
    assert titles("alert=APIHigh5xx") == []
    assert titles("service=checkout-api") == ["Checkout checks"]
    assert titles("search=cache") == ["Cache checks"]


def test_a_past_version_can_be_read(api, runbook, admin_user):
    client = api.__class__()
    client.force_authenticate(admin_user)
    assert (
        client.patch(f"/api/runbooks/{runbook.pk}/", {"title": "Checkout checks v2"}, format="json").status_code == 200
    )
    assert api.get(f"/api/runbooks/{runbook.pk}/").json()["version"] == 2
    old = api.get(f"/api/runbooks/{runbook.pk}/?version=1").json()
    assert old["version"] == 1 and old["title"] == "Checkout checks"
    assert api.get(f"/api/runbooks/{runbook.pk}/?version=9").status_code == 404
    assert api.get(f"/api/runbooks/{runbook.pk}/?version=x").status_code == 400


def test_admins_create_and_edit_runbooks_and_each_edit_is_a_version(api_for, target):
    admin = api_for("admin")
    payload = {
        "title": "Redis memory",
        "alert_names": ["RedisMemoryHigh"],
        "services": ["checkout-api"],
        "severity": "SEV2",
        "owner": "Platform",
        "sections": [{"title": "Diagnose", "kind": "diagnostics"}, {"title": "Flush", "kind": "unsafe_actions"}],
        "steps": [
            {"title": "Memory", "kind": "automated", "action": "redis_check", "params": {"check": "info_memory"}},
            {"section": 1, "title": "FLUSHDB", "command": "redis-cli FLUSHDB", "safety": "dangerous"},
        ],
    }
    created = admin.post("/api/runbooks/", payload, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["slug"] == "redis-memory" and body["version"] == 1 and body["severity"] == "SEV2"
    assert [s["safety"] for s in body["steps"]] == ["read_only", "dangerous"]
    edited = admin.patch(f"/api/runbooks/{body['id']}/", {"owner": "SRE"}, format="json")
    assert (
        edited.status_code == 200
        and edited.json()["version"] == 2
        and edited.json()["steps"]
        == [{**s, "id": edited.json()["steps"][n]["id"]} for n, s in enumerate(body["steps"])]
    )
    same = admin.patch(f"/api/runbooks/{body['id']}/", {"owner": "SRE"}, format="json")
    assert same.json()["version"] == 2  # nothing changed, no new version
    assert admin.post("/api/runbooks/", payload, format="json").status_code == 409


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"title": ""}, "title", "blank"),
        ({"severity": "SEV9"}, "severity", "must be one of"),
        ({"services": ["nope"]}, "services", "Unknown service: nope"),
        ({"steps": [{"title": "x", "kind": "automated", "action": "rm_rf"}]}, "steps[0].action", "unknown action"),
        (
            {
                "steps": [
                    {"title": "x", "kind": "automated", "action": "postgres_query", "params": {"sql": "DELETE FROM t"}}
                ]
            },
            "steps[0].params",
            "Not a read-only query: it starts with DELETE",
        ),
        ({"steps": [{"title": "x", "section": 4}]}, "steps[0].section", "index of one of the 1 sections"),
        ({"steps": [{"title": "x", "action": "http_check"}]}, "steps[0].action", "manual steps have no action"),
    ],
)
def test_bad_runbooks_are_refused_with_the_field_named(api_for, change, field, message):
    payload = {"title": "Bad", "sections": [{"title": "S"}], **change}
    response = api_for("admin").post("/api/runbooks/", payload, format="json")
    assert response.status_code == 400, response.json()
    body = response.json()
    assert field in str(body) and message in str(body)
    assert Runbook.objects.count() == 0


def test_import_through_the_api_reports_what_was_recognised(api_for):
    admin = api_for("admin")
    upload = SimpleUploadedFile("queue-cache-db-runbooks.md", (SEEDS / "queue-cache-db-runbooks.md").read_bytes())
    response = admin.post("/api/runbooks/import/", {"file": upload}, format="multipart")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["document"] == "queue-cache-db-runbooks" and len(body["runbooks"]) == 37
    assert body["automated"] == {"http_check": 3, "redis_check": 13, "postgres_query": 10, "host_check": 5}
    assert body["dangerous"] == 15 and body["runbooks"][0]["status"] == "created"
    huge = SimpleUploadedFile("huge.md", b"# Big\n" + b"x" * (5 * 1024 * 1024))
    too_big = admin.post("/api/runbooks/import/", {"file": huge}, format="multipart")
    assert too_big.status_code == 400 and "huge.md is 5.0 MB" in too_big.json()["file"][0]
    binary = SimpleUploadedFile("garbage.md", bytes(range(256)) * 50)
    refused = admin.post("/api/runbooks/import/", {"file": binary}, format="multipart")
    assert refused.status_code == 400 and "binary file" in refused.json()["detail"]


def test_start_a_run_and_read_it(api, runbook, incident):
    response = api.post("/api/runs/", {"runbook": runbook.pk, "incident": incident.pk, "target": None}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) >= RUN_FIELDS and all(set(s) >= STEP_RUN_FIELDS for s in body["steps"])
    assert body["runbook"] == runbook.pk and body["runbook_version"] == 1 and body["incident"] == incident.pk
    assert body["target"] == runbook.services.get().pk and body["started_by"] == "alice"
    assert body["state"] == "waiting_input" and body["steps"][0]["waiting_for"] == "input"
    again = api.post("/api/runs/", {"runbook": runbook.pk, "incident": incident.pk}, format="json")
    assert again.status_code == 409 and again.json()["run"] == body["id"] and "with force" in again.json()["detail"]
    forced = api.post("/api/runs/", {"runbook": runbook.pk, "incident": incident.pk, "force": True}, format="json")
    assert forced.status_code == 201 and forced.json()["forced"] is True
    assert api.get(f"/api/runs/?incident={incident.pk}").json()["count"] == 2
    assert api.get("/api/runs/?state=succeeded").json()["count"] == 0


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"runbook": 999}, "runbook"),
        ({"incident": 999}, "incident"),
        ({"target": "x"}, "target"),
        ({"runbook": None}, "runbook"),
    ],
)
def test_bad_run_requests_are_400(api, runbook, payload, message):
    response = api.post("/api/runs/", {"runbook": runbook.pk, **payload}, format="json")
    assert response.status_code == 400 and message in response.json()
    assert RunbookRun.objects.count() == 0


def test_a_target_without_the_needed_setting_is_refused(api, runbook):
    bare = ServiceFactory(slug="bare")
    response = api.post("/api/runs/", {"runbook": runbook.pk, "target": bare.pk}, format="json")
    assert response.status_code == 400
    assert "step 2 (http_check): Service bare has no base URL: set one on the service" in response.json()["detail"]


def test_step_actions_through_the_api(api, api_for, responder2):
    runbook = make_runbook(steps=[manual("Tick me"), manual("Dangerous", safety="dangerous"), manual("Last")])
    run = api.post("/api/runs/", {"runbook": runbook.pk}, format="json").json()
    first, second, third = (s["id"] for s in run["steps"])
    url = f"/api/runs/{run['id']}/steps"
    ticked = api.post(f"{url}/{first}/complete/", {"note": "all calm"}, format="json")
    assert ticked.status_code == 200 and ticked.json()["steps"][0]["note"] == "all calm"
    twice = api.post(f"{url}/{first}/complete/", {}, format="json")
    assert twice.status_code == 409 and twice.json()["detail"] == "Step 1 is already done by alice."
    early = api.post(f"{url}/{third}/complete/", {}, format="json")
    assert early.status_code == 409 and "not the current step" in early.json()["detail"]
    own = api.post(f"{url}/{second}/approve/", {}, format="json")
    assert own.status_code == 403 and "cannot approve its dangerous step 2" in own.json()["detail"]
    bob = api_for("responder")
    bob.force_authenticate(responder2)
    assert bob.post(f"{url}/{second}/approve/", {"note": "ok"}, format="json").status_code == 200
    assert api.post(f"{url}/{second}/complete/", {}, format="json").status_code == 200
    assert (
        api.post(f"{url}/{third}/complete/", {"skip": True, "note": "n/a"}, format="json").json()["state"]
        == "succeeded"
    )
    assert api.post(f"{url}/99999/complete/", {}, format="json").status_code == 404
    long_note = api.post(f"{url}/{third}/complete/", {"note": "x" * 2001}, format="json")
    assert long_note.status_code == 400 and "note" in long_note.json()
    cancel = api.post(f"/api/runs/{run['id']}/cancel/")
    assert cancel.status_code == 409 and "already succeeded" in cancel.json()["detail"]


def test_reject_and_cancel(api, api_for):
    runbook = make_runbook(steps=[manual("Flush", safety="dangerous"), manual("After")])
    run = api.post("/api/runs/", {"runbook": runbook.pk}, format="json").json()
    rejected = api.post(f"/api/runs/{run['id']}/steps/{run['steps'][0]['id']}/reject/", {"note": "no"}, format="json")
    assert rejected.status_code == 200 and rejected.json()["steps"][0]["state"] == "skipped"
    cancelled = api.post(f"/api/runs/{run['id']}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert [s["state"] for s in cancelled.json()["steps"]] == ["skipped", "cancelled"]


@pytest.mark.parametrize("role", list(EXPECTED))
def test_every_endpoint_for_every_role(api_for, role, runbook, responder2):
    read, author, run_status = EXPECTED[role]
    client = api_for(role)
    run = RunbookRun.start(make_runbook("Other", steps=[manual("a"), manual("b", safety="dangerous")]), by=responder2)
    first = run.step_runs.get(order=1)
    checks = [
        ("get", "/api/runbooks/", None, read or 200),
        ("get", f"/api/runbooks/{runbook.pk}/", None, read or 200),
        ("get", "/api/runs/", None, read or 200),
        ("get", f"/api/runs/{run.pk}/", None, read or 200),
        ("post", "/api/runbooks/", {"title": f"New {role}"}, author or 201),
        ("patch", f"/api/runbooks/{runbook.pk}/", {"owner": role}, author or 200),
        ("post", "/api/runbooks/import/", {}, author or 400),
        ("post", "/api/runs/", {"runbook": runbook.pk}, run_status or 201),
        ("post", f"/api/runs/{run.pk}/steps/{first.pk}/complete/", {}, run_status or 200),
        ("post", f"/api/runs/{run.pk}/steps/{run.step_runs.get(order=2).pk}/approve/", {}, run_status or 200),
        ("post", f"/api/runs/{run.pk}/cancel/", None, run_status or 200),
    ]
    for method, url, payload, expected in checks:
        kind = "multipart" if url.endswith("/import/") else "json"
        response = getattr(client, method)(url, payload, format=kind)
        assert response.status_code == expected, (role, method, url, response.content[:300])
        if expected == 403:
            assert response.json()["detail"]
    if role in {"anonymous", "viewer"}:
        assert RunbookRun.objects.count() == 1 and run.step_runs.filter(state="pending").count() == 2


@pytest.mark.parametrize("url", ["/api/runbooks/", "/api/runs/"])
def test_list_queries_do_not_grow(api, django_assert_max_num_queries, url, target):
    made = iter(range(100))

    def make(n):
        for _ in range(n):
            runbook = make_runbook(
                f"Runbook {next(made)}", steps=[manual("a"), auto("http_check", {"path": "/health"})], services=[target]
            )
            RunbookRun.start(runbook, by=None, incident=IncidentFactory())

    def count():
        with django_assert_max_num_queries(12) as captured:
            assert api.get(url).status_code == 200
        return len(captured.captured_queries)

    make(2)
    few = count()
    make(10)
    assert count() == few


def test_run_detail_queries_do_not_grow_with_steps(api, django_assert_max_num_queries):
    def run_with(n):
        return RunbookRun.start(make_runbook(f"R{n}", steps=[manual(f"s{i}") for i in range(n)]), by=None)

    small, big = run_with(2), run_with(40)
    with django_assert_max_num_queries(10) as few:
        api.get(f"/api/runs/{small.pk}/")
    with django_assert_max_num_queries(10) as many:
        api.get(f"/api/runs/{big.pk}/")
    assert len(few.captured_queries) == len(many.captured_queries)


def test_the_openapi_schema_describes_the_runbook_endpoints_without_warnings():
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    schema = out.getvalue()
    for path in ["/api/runbooks/import/", "/api/runs/{id}/cancel/", "/api/runs/{id}/steps/{step_id}/approve/"]:
        assert f"{path}:" in schema
