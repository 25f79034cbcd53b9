"""Portal pages and htmx partials for runbooks and runs, as a browser calls them."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from runbooks.models import Runbook, RunbookRun
from tests.factories import IncidentFactory, ServiceFactory
from tests.runbooks.conftest import SEEDS, auto, make_runbook, manual

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def as_user(client, user_for):
    def login(role):
        user = user_for(role)
        if user is not None:
            client.force_login(user)
        return client

    return login


@pytest.fixture
def seeded(admin_user):
    from runbooks.importer import import_document

    name = "cosmetica-critical-alert-runbooks.md"
    import_document((SEEDS / name).read_bytes(), name=name, by=admin_user)
    return Runbook.objects.get(slug="cosmetica-critical-alert-runbooks-apihigh5xxrate")


def test_pages_need_login(client, seeded):
    for url in ["/runbooks/", f"/runbooks/{seeded.pk}/", "/runbooks/import/"]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_list_filters_by_alert_name_and_service(as_user, seeded):
    service = ServiceFactory(name="Cosmetica API", slug="cosmetica-api")
    seeded.services.add(service)
    page = as_user("viewer").get("/runbooks/").content.decode()
    assert "APIHigh5xxRate" in page and "RefundFailures" in page and "Import markdown" not in page
    found = as_user("viewer").get("/runbooks/?q=RefundFailures").content.decode()
    assert "RefundFailures</a>" in found and "APIHigh5xxRate</a>" not in found
    by_service = as_user("viewer").get("/runbooks/?service=cosmetica-api").content.decode()
    assert "APIHigh5xxRate</a>" in by_service and "RefundFailures</a>" not in by_service
    assert "Import markdown" in as_user("admin").get("/runbooks/").content.decode()


def test_detail_renders_sections_steps_and_safety(as_user, seeded):
    page = as_user("viewer").get(f"/runbooks/{seeded.pk}/").content.decode()
    for text in ["Alert Context", "Panels to Check", "Hypothesis 1: Database Connection Pool Exhausted", "Escalate To"]:
        assert text in page
    assert "sudo systemctl restart gunicorn" in page and "badge safety-dangerous" in page
    assert "prometheus_query topk(10, sum by (path, status)" in page
    assert "Run this runbook" not in page  # viewers do not run runbooks
    assert "From Operational Runbooks" in page and "Escalation Contacts" in page
    assert "Run this runbook" in as_user("responder").get(f"/runbooks/{seeded.pk}/").content.decode()


def test_detail_shows_a_past_version(as_user, seeded, admin_user):
    from runbooks.api.serializers import spec_of

    spec = spec_of(seeded)
    spec.title = "APIHigh5xxRate (revised)"
    seeded.revise(spec, by=admin_user)
    current = as_user("viewer").get(f"/runbooks/{seeded.pk}/").content.decode()
    assert "APIHigh5xxRate (revised)" in current and 'data-testid="version">v2<' in current
    old = as_user("viewer").get(f"/runbooks/{seeded.pk}/?version=1").content.decode()
    assert "You are looking at version 1" in old
    assert as_user("viewer").get(f"/runbooks/{seeded.pk}/?version=7").status_code == 404


@pytest.mark.parametrize(("role", "status"), [("viewer", 403), ("responder", 403), ("admin", 200)])
def test_import_page_is_for_admins(as_user, role, status):
    assert as_user(role).get("/runbooks/import/").status_code == status


def test_import_form_shows_the_report(as_user):
    ServiceFactory(name="Express API", slug="express-api")
    upload = SimpleUploadedFile("express-api-ops-runbook.md", (SEEDS / "express-api-ops-runbook.md").read_bytes())
    response = as_user("admin").post("/runbooks/import/", {"files": [upload], "owner": "Platform"})
    page = response.content.decode()
    assert response.status_code == 200
    assert "5 (5 created, 0 updated, 0 unchanged)" in page and "http_check 1" in page
    assert "Postgres unavailable" in page and Runbook.objects.filter(owner="Platform").count() == 5


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        (
            "huge.md",
            b"# Big\n\n" + b"x" * (5 * 1024 * 1024),
            "huge.md is 5.0 MB; runbook documents may be at most 1.0 MB.",
        ),
        ("garbage.md", bytes(range(256)) * 40, "garbage.md looks like a binary file"),
        ("plain.md", b"no headings here\n", "plain.md: The document has no headings"),
    ],
)
def test_import_form_refuses_bad_files_clearly(as_user, name, data, message):
    response = as_user("admin").post("/runbooks/import/", {"files": [SimpleUploadedFile(name, data)]})
    assert response.status_code == 400 and message in response.content.decode()
    assert Runbook.objects.count() == 0


def test_import_form_without_a_file(as_user):
    response = as_user("admin").post("/runbooks/import/", {})
    assert response.status_code == 400 and "Choose one or more markdown files." in response.content.decode()


def test_start_a_run_from_the_runbook_page(as_user, target):
    runbook = make_runbook(steps=[manual("a")])
    incident = IncidentFactory()
    response = as_user("responder").post(f"/runbooks/{runbook.pk}/run/", {"incident": incident.pk})
    run = RunbookRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/runbooks/runs/{run.pk}/"
    again = as_user("responder").post(f"/runbooks/{runbook.pk}/run/", {"incident": incident.pk})
    assert again.status_code == 409 and "open it, or start another one with force" in again.content.decode()
    assert as_user("viewer").post(f"/runbooks/{runbook.pk}/run/", {}).status_code == 403


def test_incident_card_suggests_runbooks_by_alert_and_service(as_user, django_assert_max_num_queries):
    api = ServiceFactory(name="Cosmetica API", slug="cosmetica-api")
    by_title = make_runbook("High 5xx", steps=[manual("a")], alert_names=["APIHigh5xxRate"])
    by_service = make_runbook("API restart", steps=[manual("b")], services=[api])
    make_runbook("Unrelated", steps=[manual("c")], alert_names=["DiskFull"])
    incident = IncidentFactory(title="APIHigh5xxRate: 3% of requests failing", services=[api])
    client = as_user("responder")
    page = client.get(f"/runbooks/for-incident/{incident.pk}/", **HX).content.decode()
    assert page.index("High 5xx") < page.index("API restart") and "Unrelated" not in page
    assert f'hx-post="/runbooks/{by_title.pk}/run/"' in page and f"/runbooks/{by_service.pk}/run/" in page
    detail = client.get(f"/incidents/{incident.pk}/").content.decode()
    assert f'hx-get="/runbooks/for-incident/{incident.pk}/"' in detail


def test_incident_card_uses_the_alerts_of_the_incident(as_user, responder):
    from incidents.models import Alert, AlertGroup, Integration

    make_runbook("Refunds failing", steps=[manual("a")], alert_names=["RefundFailures"])
    incident = IncidentFactory(title="Payments degraded")
    integration, _ = Integration.create(name="Alertmanager", kind="alertmanager", by=responder)
    group = AlertGroup.objects.create(integration=integration, group_key="g", key_hash="h", incident=incident)
    Alert.objects.create(
        integration=integration, group=group, incident=incident, fingerprint="f1", alertname="RefundFailures",
        status="firing", starts_at=incident.detected_at,
    )  # fmt: skip
    page = as_user("responder").get(f"/runbooks/for-incident/{incident.pk}/", **HX).content.decode()
    assert "Refunds failing" in page


def test_incident_card_queries_do_not_grow(as_user, django_assert_max_num_queries, responder):
    api = ServiceFactory(name="Cosmetica API", slug="cosmetica-api")
    incident = IncidentFactory(title="APIHigh5xxRate", services=[api])
    client = as_user("responder")

    def count():
        with django_assert_max_num_queries(20) as captured:
            assert client.get(f"/runbooks/for-incident/{incident.pk}/", **HX).status_code == 200
        return len(captured.captured_queries)

    def add(n):
        for _ in range(n):
            runbook = make_runbook(
                f"Runbook {next(made)}", steps=[manual("a")], services=[api], alert_names=["APIHigh5xxRate"]
            )
            RunbookRun.start(runbook, by=responder, incident=incident)

    made = iter(range(100))
    add(1)
    count()  # the session's idle-timeout write comes with the first request after sign-in
    few = count()
    add(6)
    assert count() == few


def test_run_from_the_incident_card(as_user, target):
    runbook = make_runbook(steps=[manual("a")], alert_names=["APIHigh5xxRate"])
    incident = IncidentFactory(title="APIHigh5xxRate firing")
    client = as_user("responder")
    response = client.post(f"/runbooks/{runbook.pk}/run/", {"incident": incident.pk, "from": "incident"}, **HX)
    run = RunbookRun.objects.get()
    assert response.status_code == 204 and response["HX-Redirect"] == f"/runbooks/runs/{run.pk}/"
    card = client.get(f"/runbooks/for-incident/{incident.pk}/", **HX).content.decode()
    assert f"Run #{run.pk} · Checkout checks" in card and "Waiting for input" in card
    again = client.post(f"/runbooks/{runbook.pk}/run/", {"incident": incident.pk, "from": "incident"}, **HX)
    assert again.status_code == 409 and 'id="runbooks-card"' in again.content.decode()
    assert "is still waiting for input" in again.content.decode() and 'name="force"' in again.content.decode()


def test_run_page_and_its_live_partial(as_user, responder, target):
    run = RunbookRun.start(
        make_runbook(steps=[manual("Check the dashboard"), auto("http_check", {"path": "/health"})], services=[target]),
        by=responder,
    )
    page = as_user("viewer").get(f"/runbooks/runs/{run.pk}/").content.decode()
    assert "Check the dashboard" in page and "Waiting for input" in page and 'hx-trigger="every 2s"' in page
    assert "Done</button>" not in page  # viewers cannot tick
    live = as_user("responder").get(f"/runbooks/runs/{run.pk}/live/", **HX)
    assert live.status_code == 200 and "Done</button>" in live.content.decode()
    token = live.context["token"]
    assert as_user("responder").get(f"/runbooks/runs/{run.pk}/live/?since={token}", **HX).status_code == 204


def test_ticking_approving_and_cancelling_from_the_run_page(as_user, responder, responder2):
    runbook = make_runbook(steps=[manual("Tick"), manual("Restart", safety="dangerous"), manual("Last")])
    run = RunbookRun.start(runbook, by=responder)
    first, second, _ = run.step_runs.order_by("order")
    client = as_user("responder")  # alice, who started the run
    base = f"/runbooks/runs/{run.pk}/steps"
    ticked = client.post(f"{base}/{first.pk}/complete/", {"note": "calm", "skip": ""}, **HX)
    assert ticked.status_code == 200 and "“calm”" in ticked.content.decode()
    twice = client.post(f"{base}/{first.pk}/complete/", {}, **HX)
    assert twice.status_code == 409 and "Step 1 is already done by alice." in twice.content.decode()
    page = client.get(f"/runbooks/runs/{run.pk}/live/", **HX).content.decode()
    assert "someone other than you (you started the run) has to approve it" in page and ">Approve<" not in page
    own = client.post(f"{base}/{second.pk}/approve/", {}, **HX)
    assert own.status_code == 403 and "another responder has to" in own.content.decode()
    client.force_login(responder2)
    assert ">Approve<" in client.get(f"/runbooks/runs/{run.pk}/live/", **HX).content.decode()
    assert client.post(f"{base}/{second.pk}/approve/", {"note": "go"}, **HX).status_code == 200
    cancelled = client.post(f"/runbooks/runs/{run.pk}/cancel/", **HX)
    assert cancelled.status_code == 200 and 'data-testid="run-state">Cancelled<' in cancelled.content.decode()
    assert as_user("viewer").post(f"/runbooks/runs/{run.pk}/cancel/", **HX).status_code == 403


def test_list_page_queries_do_not_grow(as_user, django_assert_max_num_queries, target):
    client = as_user("viewer")

    def count():
        with django_assert_max_num_queries(12) as captured:
            assert client.get("/runbooks/").status_code == 200
        return len(captured.captured_queries)

    for n in range(2):
        make_runbook(f"A{n}", steps=[manual("x")], services=[target])
    count()  # the session's idle-timeout write comes with the first request after sign-in
    few = count()
    for n in range(20):
        make_runbook(f"B{n}", steps=[manual("x")], services=[target])
    assert count() == few


def test_admin_pages_show_runbooks_versions_runs_and_documents(admin_client, seeded, responder):
    target = ServiceFactory(
        slug="t",
        base_url="http://api.internal",
        http_hosts="status.vendor.test",
        prometheus_url="http://p:9090",
        database_url="postgres://ro@db/app",
    )
    # The seed's external health check names external-api.example.com: its host is asked for.
    run = RunbookRun.start(seeded, by=responder, target=target, params={"external_api_host": "status.vendor.test"})
    version = seeded.current_version
    for url in [
        "/admin/runbooks/runbook/",
        f"/admin/runbooks/runbook/{seeded.pk}/change/",
        f"/admin/runbooks/runbookversion/{version.pk}/change/",
        "/admin/runbooks/runbookrun/",
        f"/admin/runbooks/runbookrun/{run.pk}/change/",
        "/admin/runbooks/runbookdocument/",
    ]:
        assert admin_client.get(url).status_code == 200, url
    response = admin_client.post(
        "/admin/runbooks/runbookrun/", {"action": "cancel_runs", "_selected_action": [run.pk]}, follow=True
    )
    assert response.status_code == 200
    run.refresh_from_db()
    assert run.cancel_requested_at is not None
