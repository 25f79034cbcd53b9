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
    body = bodies(incident)[0]
    assert body.startswith(
        "First look for alert `APIHigh5xxRate`: runbook **Checkout checks** v1 runs 2 of its 5 steps, target"
    )
    # What did not run, and why; the missing setting links to where it is configured.
    assert (
        "Skipped 3: 1 because a person does it; 1 because it changes something, so it waits for a person; "
        "1 because no target service has what it needs." in body
    )
    assert f"- step 4 Redis (no Redis URL on the target): Service {target.slug} has no Redis URL" in body
    assert f"[Configure the target](/admin/incidents/service/{target.pk}/change/)" in body
    run.refresh_from_db()
    assert [(s["order"], s["reason"]) for s in run.first_look_skipped] == [
        (2, "manual"),
        (3, "not_read_only"),
        (4, "no_target"),
    ]
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


def test_no_runbook_for_the_alert_starts_nothing_and_the_timeline_says_so(checkout_runbook, client, viewer):
    incident = IncidentFactory()
    start_first_look(incident, "DiskFull", integration=None)
    other = IncidentFactory()
    start_first_look(other, "", integration=None)
    assert not RunbookRun.objects.exists()
    assert bodies(incident) == ["No first look: no runbook answers alert `DiskFull`."]
    assert bodies(other) == ["No first look: the alert has no name for a runbook to answer."]
    client.force_login(viewer)
    timeline = client.get(f"/incidents/{incident.pk}/timeline/entries/").content.decode()
    assert "No first look: no runbook answers alert <code>DiskFull</code>." in timeline


def test_a_runbook_without_a_reachable_check_says_so_on_the_timeline():
    make_runbook("Manual only", steps=[manual("Call the DBA")], alert_names=["ReplicaLag"])
    incident = IncidentFactory()
    start_first_look(incident, "ReplicaLag", integration=None)
    assert not RunbookRun.objects.exists()
    assert bodies(incident) == [
        "First look for alert `ReplicaLag` did not start: Manual only has no read-only checks to run."
        "\n\nSkipped 1: 1 because a person does it."
    ]


def test_a_manual_step_with_placeholders_says_so():
    make_runbook(
        "Queue stuck",
        steps=[manual("Purge the queue", command="celery -A <app> purge -Q $QUEUE_NAME")],
        alert_names=["QueueStuck"],
    )
    incident = IncidentFactory()
    start_first_look(incident, "QueueStuck", integration=None)
    assert bodies(incident)[0].endswith("Skipped 1: 1 because its command has placeholders to fill in.")


def test_the_incident_page_shows_what_the_first_look_skipped(client, viewer, checkout_runbook, target):
    incident = IncidentFactory(title="5xx", services=[target])
    start_first_look(incident, "APIHigh5xxRate", integration=None)
    client.force_login(viewer)
    card = client.get(f"/runbooks/for-incident/{incident.pk}/").content.decode()
    assert "First look ran 2 of 5 steps" in card
    assert "Step 3 Risky: it changes something, so it waits for a person" in card
    assert f'href="/admin/incidents/service/{target.pk}/change/">Configure the target</a>' in card
    timeline = client.get(f"/incidents/{incident.pk}/timeline/entries/").content.decode()
    assert "Skipped 3" in timeline and "Configure the target</a>" in timeline


def test_an_imported_alert_runbook_answers_a_real_alertmanager_delivery(client, django_capture_on_commit_callbacks):
    service = ServiceFactory(
        name="Cosmetica API",
        slug="cosmetica-api",
        prometheus_url="http://prometheus.internal:9090",
        base_url="http://cosmetica-api.internal:3000",
        http_hosts="external-api.example.com",  # the external dependency its runbook checks
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
