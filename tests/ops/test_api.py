"""The ops API: admin only (403 for everyone else), CSRF for session callers, clear 4xx on bad
input with nothing changed, and an audit record for every change."""

import pytest
from django.test import Client

from ops.models import ActionRequest, AuditRecord, FailedTask, MaintenanceSwitch, RetentionRun
from tests.conftest import ROLES

pytestmark = pytest.mark.django_db

# (method, path, body): every ops endpoint, with a body an admin may send (dry runs: nothing moves).
ENDPOINTS = [
    ("post", "/api/ops/jobs/pause", {"queue": "runbooks", "dry_run": True}),
    ("post", "/api/ops/jobs/resume", {"queue": "runbooks", "dry_run": True}),
    ("get", "/api/ops/tasks?status=failed", None),
    ("post", "/api/ops/tasks/requeue", {"ids": [1], "dry_run": True}),
    ("get", "/api/ops/cache", None),
    ("post", "/api/ops/cache/invalidate", {"tags": ["dashboard"], "dry_run": True}),
    ("get", "/api/ops/retention/run", None),
    ("post", "/api/ops/retention/run", {"dry_run": True}),
    ("get", "/api/ops/maintenance", None),
    ("post", "/api/ops/maintenance", {"enabled": True, "dry_run": True}),
    ("post", "/api/ops/webhooks/redeliver", {"deliveryId": 999}),
    ("get", "/api/ops/requests", None),
    ("get", "/api/ops/requests/999", None),
    ("post", "/api/ops/requests", {"action": "remove_task", "params": {"ids": [1]}, "reason": "poison message"}),
    ("post", "/api/ops/requests/999/approve", {"note": "ok"}),
    ("post", "/api/ops/requests/999/reject", {"note": "no"}),
]


@pytest.fixture
def failed(db):
    return FailedTask.objects.create(
        task_id="t-1", name="ops.tests.flaky", queue="celery", exception="ValueError: boom"
    )


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_only_admins_reach_the_ops_api(api_for, role, method, path, body, failed):
    response = getattr(api_for(role), method)(path, body, format="json") if body else api_for(role).get(path)
    if role == "admin":
        # 202: a request for approval; 404: a delivery or request that is not there
        assert response.status_code in (200, 202, 404), response.content
    else:
        assert response.status_code in (401, 403)
        assert response.json()["detail"]
    assert not MaintenanceSwitch.objects.filter(enabled=True).exists()


@pytest.mark.parametrize(("method", "path", "body"), [e for e in ENDPOINTS if e[0] == "post"])
def test_session_callers_need_the_csrf_token(admin_user, method, path, body):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post(path, body, content_type="application/json")
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
    token = client.get("/incidents/").cookies["csrftoken"].value
    response = client.post(path, body, content_type="application/json", headers={"X-CSRFToken": token})
    assert response.status_code in (200, 202, 404)


def test_a_token_caller_needs_no_csrf(admin_user):
    from opsportal.models import ApiToken

    _, key = ApiToken.issue(admin_user)
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        "/api/ops/retention/run", {"dry_run": True}, content_type="application/json",
        headers={"Authorization": f"Token {key}"},
    )  # fmt: skip
    assert response.status_code == 200 and response.json()["detail"].startswith("Dry run: would remove")


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/api/ops/jobs/pause", {"queue": "nope"}, "Unknown queue 'nope'"),
        ("/api/ops/jobs/resume", {"queue": "nope"}, "Unknown queue 'nope'"),
        ("/api/ops/tasks/requeue", {"ids": []}, "empty"),
        ("/api/ops/tasks/requeue", {}, "required"),
        ("/api/ops/tasks/requeue", {"ids": [12345]}, "No failed task with id 12345"),
        ("/api/ops/cache/invalidate", {"tags": ["nope"]}, "Unknown cache tag 'nope'"),
        ("/api/ops/cache/invalidate", {"tags": []}, "empty"),
        ("/api/ops/cache/invalidate", {"pattern": "*"}, "matches every key"),
        # With the flag it becomes a request for approval, which needs a reason.
        ("/api/ops/cache/invalidate", {"pattern": "*", "dangerous": True}, "Say why (reason)"),
        ("/api/ops/cache/invalidate", {"pattern": "*", "dangerous": True, "reason": "  "}, "Say why (reason)"),
        ("/api/ops/jobs/pause", {"incident": 999999}, "object does not exist"),
        # A typo must not turn a dry run into the real thing.
        ("/api/ops/jobs/pause", {"queue": "runbooks", "dryrun": True}, "unknown parameters: dryrun"),
        ("/api/ops/requests", {"action": "analyze", "reason": "x"}, "is not a valid choice"),
        ("/api/ops/requests", {"action": "purge_queue", "params": {"queue": "nope"}, "reason": "x"}, "Unknown queue"),
        ("/api/ops/requests", {"action": "cache_flush", "params": {"dry_run": True}, "reason": "x"}, "Leave dry_run"),
        ("/api/ops/requests", {"action": "cache_flush"}, "required"),
        ("/api/ops/requests", {"action": "remove_task", "params": {"ids": []}, "reason": "x"}, "non-empty list"),
        ("/api/ops/cache/invalidate", {}, "either tags"),
        ("/api/ops/maintenance", {}, "required"),
        ("/api/ops/maintenance", {"enabled": "maybe"}, "valid boolean"),
    ],
)
def test_bad_input_is_refused_clearly_and_changes_nothing(api_for, path, body, message):
    response = api_for("admin").post(path, body, format="json")
    assert response.status_code == 400
    assert message in str(response.json())
    assert not AuditRecord.objects.exists()
    assert not ActionRequest.objects.exists()


def test_unknown_task_status_is_a_400(api_for):
    response = api_for("admin").get("/api/ops/tasks?status=weird")
    assert response.status_code == 400 and "failed or pending" in response.json()["detail"]


def test_requeue_is_all_or_nothing(api_for, failed):
    other = FailedTask.objects.create(task_id="t-2", name="x", exception="E", requeued_at="2026-01-01T00:00Z")
    response = api_for("admin").post("/api/ops/tasks/requeue", {"ids": [failed.pk, other.pk]}, format="json")
    assert response.status_code == 409 and f"Already requeued or removed: {other.pk}" in response.json()["detail"]
    failed.refresh_from_db()
    assert failed.requeued_at is None
    audit = AuditRecord.objects.get()
    assert audit.action == "retry_failed" and not audit.ok and audit.actor.username == "root"


def test_maintenance_switch_is_audited(api_for, admin_user):
    response = api_for("admin").post("/api/ops/maintenance", {"enabled": True}, format="json")
    assert response.status_code == 200 and response.json()["detail"] == "Maintenance mode turned on."
    assert api_for("admin").get("/api/ops/maintenance").json()["enabled"] is True
    again = api_for("admin").post("/api/ops/maintenance", {"enabled": True}, format="json")
    assert again.json()["detail"] == "Maintenance mode was already on."
    audit = AuditRecord.objects.order_by("id").first()
    assert (audit.action, audit.safety, audit.via, audit.target, audit.actor) == (
        "maintenance_mode", "change", "api", "portal", admin_user,
    )  # fmt: skip
    assert audit.params == {"enabled": True, "message": "", "dry_run": False}
    api_for("admin").post("/api/ops/maintenance", {"enabled": False}, format="json")
    assert MaintenanceSwitch.current().enabled is False


def test_dry_runs_say_what_they_would_do_and_change_nothing(api_for, failed):
    admin = api_for("admin")
    assert admin.post("/api/ops/maintenance", {"enabled": True, "dry_run": True}, format="json").json()["detail"] == (
        "Dry run: maintenance is off; would turn it on."
    )
    assert (
        "would requeue failed tasks"
        in admin.post("/api/ops/tasks/requeue", {"ids": [failed.pk], "dry_run": True}, format="json").json()["detail"]
    )
    assert (
        "would pause consumption of runbooks"
        in admin.post("/api/ops/jobs/pause", {"queue": "runbooks", "dry_run": True}, format="json").json()["detail"]
    )
    failed.refresh_from_db()
    assert failed.requeued_at is None and not MaintenanceSwitch.current().enabled
    assert not RetentionRun.objects.exists()
    assert AuditRecord.objects.filter(dry_run=True).count() == 3


def test_failed_tasks_are_listed_with_their_reason(api_for, failed):
    body = api_for("admin").get("/api/ops/tasks?status=failed").json()
    assert body["status"] == "failed"
    assert [(t["id"], t["name"], t["reason"]) for t in body["tasks"]] == [
        (failed.pk, "ops.tests.flaky", "ValueError: boom")
    ]


def test_cache_stats_answer(api_for):
    body = api_for("admin").get("/api/ops/cache").json()
    assert body["available"] is True and "dashboard" in body["tags"]


def test_pending_tasks_without_a_worker(api_for):
    body = api_for("admin").get("/api/ops/tasks?status=pending").json()
    assert body == {"status": "pending", "tasks": []}
