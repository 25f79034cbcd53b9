"""The ops console (/ops/): admin only; its cards show and run the same audited actions as the API."""

from urllib.parse import quote

import pytest

from ops.models import ActionRequest, AuditRecord, FailedTask, MaintenanceSwitch, RetentionRun
from runbooks.models import RunbookRun
from tests.conftest import ROLES

pytestmark = pytest.mark.django_db
# The console page, whatever the number of failed tasks, requests, audit records or health check
# steps: 5 session/auth (read, user, savepoint, save, release), maintenance switch, failed tasks,
# retention, audit, requests (expire, pending, decided), health check (run, its steps, their
# runbook steps), and the navigation's approvals badge (steps and ops requests waiting for this admin).
CONSOLE_QUERIES = 17

PAGES = ["/ops/", "/ops/queues/", "/ops/cache/", "/ops/requests/", "/ops/health-check/"]
POSTS = [
    ("/ops/maintenance/", {"enabled": "off"}),
    ("/ops/retention/", {"dry_run": "on"}),
    ("/ops/tasks/1/requeue/", {}),
    ("/ops/tasks/1/remove/", {"reason": "poison"}),
    ("/ops/queues/runbooks/pause/", {}),
    ("/ops/queues/runbooks/purge/", {"reason": "flood"}),
    ("/ops/cache/flush/", {"reason": "poisoned"}),
    ("/ops/requests/ask/", {"action": "cache_flush", "reason": "poisoned"}),
    ("/ops/requests/1/approve/", {}),
    ("/ops/requests/1/reject/", {}),
    ("/ops/health-check/run/", {}),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("path", PAGES)
def test_pages_are_for_admins(client, user_for, role, path):
    user = user_for(role)
    if user:
        client.force_login(user)
    response = client.get(path)
    expected = 200 if role == "admin" else 302 if role == "anonymous" else 403
    assert response.status_code == expected


@pytest.mark.parametrize("role", ["anonymous", "viewer", "responder"])
@pytest.mark.parametrize(("path", "data"), POSTS)
def test_actions_are_for_admins(client, user_for, role, path, data):
    user = user_for(role)
    if user:
        client.force_login(user)
    assert client.post(path, data).status_code in (302, 403)
    assert not AuditRecord.objects.exists()
    assert not ActionRequest.objects.exists() and not RunbookRun.objects.exists()


def test_the_console_shows_every_card(client, admin_user, django_assert_max_num_queries):
    FailedTask.objects.create(task_id="t", name="incidents.tasks.deliver_webhook", queue="celery", exception="Boom: x")
    client.force_login(admin_user)
    with django_assert_max_num_queries(CONSOLE_QUERIES):
        body = client.get("/ops/").content.decode()
    titles = ["Maintenance mode", "Queues", "Failed tasks", "Cache", "Retention", "Daily health check"]
    for title in [*titles, "Dangerous actions: approvals", "Audit trail"]:
        assert f"<h2>{title}</h2>" in body
    assert "incidents.tasks.deliver_webhook" in body and "Boom: x" in body
    assert 'href="/ops/"' in body  # the nav link


def test_maintenance_switch_from_the_console(client, admin_user):
    client.force_login(admin_user)
    response = client.post("/ops/maintenance/", {"enabled": "on"})
    assert response.status_code == 200 and "Maintenance mode turned on." in response.content.decode()
    assert MaintenanceSwitch.current().enabled
    assert client.get("/ops/").status_code == 200  # the console stays reachable
    response = client.post("/ops/maintenance/", {"enabled": "off"})
    assert "Maintenance mode turned off." in response.content.decode()
    assert client.post("/ops/maintenance/", {"enabled": "maybe"}).status_code == 400
    assert [a.actor for a in AuditRecord.objects.all()] == [admin_user, admin_user]


def test_retention_and_requeue_from_the_console(client, admin_user):
    client.force_login(admin_user)
    body = client.post("/ops/retention/", {}).content.decode()
    assert "Removed 0 login attempts" in body and RetentionRun.objects.count() == 1
    missing = client.post("/ops/tasks/999/requeue/")
    assert missing.status_code == 400 and "No failed task with id 999" in missing.content.decode()
    unknown = client.post("/ops/queues/nope/pause/")
    assert unknown.status_code == 400 and "Unknown queue" in unknown.content.decode()


def test_the_cache_card(client, admin_user):
    client.force_login(admin_user)
    body = client.get("/ops/cache/").content.decode()
    assert "Tagged dashboard" in body


@pytest.mark.parametrize("model", ["auditrecord", "failedtask", "maintenanceswitch", "retentionrun", "actionrequest"])
def test_admin_lists(client, admin_user, model):
    client.force_login(admin_user)
    assert client.get(f"/admin/ops/{model}/").status_code == 200


def test_admin_requeue_is_all_or_nothing(client, admin_user):
    done = FailedTask.objects.create(task_id="a", name="x", exception="E", requeued_at="2026-01-01T00:00Z")
    waiting = FailedTask.objects.create(task_id="b", name="x", exception="E")
    client.force_login(admin_user)
    response = client.post(
        "/admin/ops/failedtask/", {"action": "requeue", "_selected_action": [done.pk, waiting.pk]}, follow=True
    )
    assert "Already requeued or removed" in response.content.decode()
    waiting.refresh_from_db()
    assert waiting.requeued_at is None


@pytest.fixture
def admin2(db):
    from tests.factories import UserFactory

    return UserFactory(username="second", role="admin", is_staff=True)


def test_remove_from_the_console_only_asks_and_another_admin_approves(
    client, admin_user, admin2, incident, django_capture_on_commit_callbacks
):
    task = FailedTask.objects.create(task_id="t-rm", name="x.poison", queue="celery", exception="E")
    client.force_login(admin_user)
    refused = client.post(f"/ops/tasks/{task.pk}/remove/")
    assert refused.status_code == 400 and "Say why (reason)" in refused.content.decode()
    response = client.post(f"/ops/tasks/{task.pk}/remove/", headers={"HX-Request": "true", "HX-Prompt": "loops"})
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "ops-requests-changed"
    assert "waits for another admin&#x27;s approval" in response.content.decode()
    task.refresh_from_db()
    assert task.removed_at is None
    asked = ActionRequest.objects.get()
    card = client.get("/ops/requests/").content.decode()
    assert f'id="request-{asked.pk}"' in card and "Withdraw" in card and "Approve</button>" not in card
    own = client.post(f"/ops/requests/{asked.pk}/approve/")
    assert own.status_code == 403 and "another admin has to" in own.content.decode()

    client.force_login(admin2)
    card = client.get("/ops/requests/").content.decode()
    assert "Approve</button>" in card and "Reject</button>" in card
    with django_capture_on_commit_callbacks(execute=False):
        approved = client.post(f"/ops/requests/{asked.pk}/approve/", {"note": "seen it"})
    assert approved.status_code == 200 and "approved: a worker runs it now" in approved.content.decode()
    assert "Nothing is waiting for approval." in approved.content.decode()


def test_a_prompt_htmx_had_to_encode_is_read_back(client, admin_user):
    client.force_login(admin_user)
    reason = "flood of bad jobs — customers wait 10 min"  # an em dash cannot go in a header as is
    headers = {"HX-Request": "true", "HX-Prompt": quote(reason), "HX-Prompt-URI-AutoEncoded": "true"}
    assert client.post("/ops/cache/flush/", headers=headers).status_code == 200
    assert ActionRequest.objects.get().reason == reason


def test_the_ask_form_refuses_bad_input_and_keeps_what_was_typed(client, admin_user, incident):
    client.force_login(admin_user)
    bad_json = client.post("/ops/requests/ask/", {"action": "reindex", "params": "{table", "reason": "bloat"})
    assert bad_json.status_code == 400 and "must be a JSON object" in bad_json.content.decode()
    assert 'value="bloat"' in bad_json.content.decode()
    unknown = client.post("/ops/requests/ask/", {"action": "cache_flush", "reason": "x", "incident": "INC-99999"})
    assert unknown.status_code == 400 and "No incident" in unknown.content.decode()
    not_dangerous = client.post("/ops/requests/ask/", {"action": "analyze", "reason": "x"})
    assert not_dangerous.status_code == 400 and "is not a dangerous action" in not_dangerous.content.decode()
    ok = client.post(
        "/ops/requests/ask/",
        {"action": "cache_flush", "params": "", "reason": "poisoned", "incident": incident.reference},
    )
    assert ok.status_code == 200, ok.content.decode()
    assert ActionRequest.objects.get().incident == incident
    assert not ActionRequest.objects.exclude(incident=incident).exists()


def test_the_console_query_count_does_not_grow_with_requests_or_health_steps(
    client, admin_user, admin2, django_assert_max_num_queries
):
    from ops import approvals, health_check

    client.force_login(admin_user)
    health_check.start(by=admin_user)
    for n in range(6):
        asked = approvals.ask("cache_flush", {}, by=admin2, reason=f"r{n}")
        if n % 2:
            approvals.reject(asked.pk, by=admin_user)
    with django_assert_max_num_queries(CONSOLE_QUERIES):
        body = client.get("/ops/").content.decode()
    assert body.count('id="request-') == 3 and "Run <a" in body


def test_running_the_health_check_from_the_console(client, admin_user):
    client.force_login(admin_user)
    response = client.post("/ops/health-check/run/")
    assert response.status_code == 200
    body = response.content.decode()
    run = RunbookRun.objects.get()
    assert f"Health check run #{run.pk} started" in body and "API health" in body
    assert run.started_by == admin_user
