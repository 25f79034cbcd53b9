"""The ops console (/ops/): admin only; its cards show and run the same audited actions as the API."""

import pytest

from ops.models import AuditRecord, FailedTask, MaintenanceSwitch, RetentionRun
from tests.conftest import ROLES

pytestmark = pytest.mark.django_db

PAGES = ["/ops/", "/ops/queues/", "/ops/cache/"]
POSTS = [
    ("/ops/maintenance/", {"enabled": "off"}),
    ("/ops/retention/", {"dry_run": "on"}),
    ("/ops/tasks/1/requeue/", {}),
    ("/ops/queues/runbooks/pause/", {}),
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


def test_the_console_shows_every_card(client, admin_user, django_assert_max_num_queries):
    FailedTask.objects.create(task_id="t", name="incidents.tasks.deliver_webhook", queue="celery", exception="Boom: x")
    client.force_login(admin_user)
    with django_assert_max_num_queries(12):
        body = client.get("/ops/").content.decode()
    for title in ("Maintenance mode", "Queues", "Failed tasks", "Cache", "Retention", "Audit trail"):
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
