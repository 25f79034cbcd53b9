"""The first look: an alert that opens an incident starts the read-only checks of its runbook."""

import json

import pytest

from incidents.alerting.first_look import start_first_look
from incidents.models import AlertDelivery, Incident, Integration, TimelineEvent
from incidents.tasks import process_alert_delivery
from runbooks.importer import import_document
from runbooks.models import RunbookRun
from tests.factories import IncidentFactory, ServiceFactory
from tests.incidents.alerting.payloads import alert, alertmanager
from tests.runbooks.conftest import SEEDS, auto, make_runbook, manual, purge_runbook_queue

pytestmark = pytest.mark.django_db


def bodies(incident) -> list[str]:
    return list(TimelineEvent.objects.filter(incident=incident, kind="runbook").values_list("body", flat=True))


@pytest.fixture
def checkout_runbook(target):
    return make_runbook(
        steps=[
            auto("http_check", {"path": "/health"}, title="Health"),
            manual("Look at the dashboard"),
            auto("http_check", {"path": "/ready"}, title="Risky", safety="dangerous"),
            auto("redis_check", {"check": "ping"}, title="Redis (no Redis URL on the target)"),
            auto("host_check", {"check": "memory"}, title="Memory"),
        ],
        services=[target],
        alert_names=["APIHigh5xxRate"],
    )


def test_only_the_read_only_automated_steps_the_target_serves_start(checkout_runbook, target, responder):
    incident = IncidentFactory(title="More than 1% of API requests return 5xx", services=[target])
    start_first_look(incident, "APIHigh5xxRate", integration=None)
    run = RunbookRun.objects.get()
    assert run.first_look is True and run.started_by is None and run.target == target and run.state == "queued"
    assert [s.step.title for s in run.step_runs.order_by("order")] == ["Health", "Memory"]
    assert bodies(incident)[0].startswith(
        "First look for alert `APIHigh5xxRate`: runbook **Checkout checks** v1 runs its 2 read-only checks (of 5 steps)"
    )
    # A responder can still start the whole runbook while the first look is under way.
    target.redis_url = "redis://cache.internal:6379/0"
    target.save()
    full = RunbookRun.start(checkout_runbook, by=responder, incident=incident)
    assert full.first_look is False and full.step_runs.count() == 5


def test_alert_names_match_whole_names_whatever_the_case(checkout_runbook):
    incident = IncidentFactory()
    start_first_look(incident, "apihigh5xxrate", integration=None)
    start_first_look(incident, "APIHigh5xx", integration=None)
    assert RunbookRun.objects.count() == 1


def test_no_runbook_for_the_alert_starts_nothing(checkout_runbook):
    incident = IncidentFactory()
    start_first_look(incident, "DiskFull", integration=None)
    start_first_look(incident, "", integration=None)
    assert not RunbookRun.objects.exists() and bodies(incident) == []


def test_a_runbook_without_a_reachable_check_says_so_on_the_timeline():
    make_runbook("Manual only", steps=[manual("Call the DBA")], alert_names=["ReplicaLag"])
    incident = IncidentFactory()
    start_first_look(incident, "ReplicaLag", integration=None)
    assert not RunbookRun.objects.exists()
    assert bodies(incident) == [
        "First look for alert `ReplicaLag` did not start: Manual only has no read-only checks to run."
    ]


def test_an_imported_alert_runbook_answers_a_real_alertmanager_delivery(client, django_capture_on_commit_callbacks):
    service = ServiceFactory(
        name="Cosmetica API", slug="cosmetica-api", prometheus_url="http://prometheus.internal:9090"
    )
    name = "cosmetica-critical-alert-runbooks.md"
    import_document((SEEDS / name).read_bytes(), name=name, services=["cosmetica-api"])
    _, token = Integration.create(name="prod-alertmanager", kind="alertmanager")
    try:
        response = client.post(
            f"/api/integrations/alertmanager/{token}/",
            json.dumps(alertmanager(alert())),
            content_type="application/json",
        )
        assert response.status_code == 202
        with django_capture_on_commit_callbacks(execute=True):
            process_alert_delivery(AlertDelivery.objects.get().pk)  # what the worker does with the queued delivery
        incident = Incident.objects.get()
        run = RunbookRun.objects.get()
        titles = [s.step.title for s in run.step_runs.order_by("order")]
        # The PromQL queries (the target has a Prometheus URL); no SQL (no database URL), no restart,
        # nothing manual, and no request to external-api.example.com: that host is a parameter no
        # label fills, so the check is left out and the timeline says why.
        assert titles == ["Find Top Failing Endpoints", "Find Top Exceptions", "Check stock consumption failures"]
        assert run.first_look and run.target == service and run.runbook.title == "APIHigh5xxRate"
        assert "First look for alert `APIHigh5xxRate`" in bodies(incident)[0]
        assert (
            "Left out, for want of a value: step 21 **Check external services** needs external_api_host."
            in (bodies(incident)[0])
        )
    finally:
        purge_runbook_queue("celery", "runbooks")
