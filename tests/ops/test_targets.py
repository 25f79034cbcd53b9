"""An action pointed at a target service (its broker, Redis or database URL) instead of the portal,
through the ops API, approvals and runbook runs alike: refused clearly when the service cannot
serve the action, never falling back to the portal's own queues, cache or database; run against
real Redis when it can."""

import time

import pytest
from celery import Celery
from django.core.cache import cache

from incidents.models import Service, TimelineEvent
from ops import approvals
from ops.models import ActionRequest, AuditRecord
from runbooks.actions import ACTIONS
from runbooks.models import RunbookRun
from tests.factories import IncidentFactory, ServiceFactory, UserFactory
from tests.runbooks.conftest import auto, make_runbook, redis_keys, redis_url, wait_for  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/api/ops/jobs/pause", {"service": "bare", "queue": "emails"}, "Service bare has no broker URL"),
        ("/api/ops/cache/invalidate", {"service": "bare", "pattern": "x:*"}, "Service bare has no Redis URL"),
        ("/api/ops/retention/run", {"service": "bare"}, "unknown parameters"),
        ("/api/ops/jobs/pause", {"service": "nope"}, "does not exist"),
        ("/api/ops/requests", {"action": "reindex", "service": "bare", "params": {"table": "t"}, "reason": "r"},
         "Service bare has no database URL"),
        ("/api/ops/requests", {"action": "remove_task", "service": "bare", "params": {"ids": [1]}, "reason": "r"},
         "remove_task acts on the portal itself"),
        ("/api/ops/jobs/resume", {"service": "bare", "queue": "emails"},
         "Service bare has no broker URL: set one on the service (admin → Services) to run queue_resume against it."),
        ("/api/ops/requests", {"action": "cache_flush", "service": "bare", "reason": "r"},
         "Service bare has no Redis URL: set one on the service (admin → Services) to run cache_flush against it."),
        ("/api/ops/requests", {"action": "purge_queue", "service": "bare", "params": {"queue": "q"}, "reason": "r"},
         "Service bare has no broker URL"),
    ],
)  # fmt: skip
def test_a_service_that_cannot_serve_the_action_is_refused(api_for, path, body, message):
    ServiceFactory(slug="bare")  # no broker, Redis or database URL
    response = api_for("admin").post(path, body, format="json")
    assert response.status_code == 400 and message in str(response.json()), response.json()
    assert not AuditRecord.objects.exists() and not ActionRequest.objects.exists()


def test_queue_stats_of_a_target_need_a_known_service(api_for):
    response = api_for("admin").get("/api/ops/queues?service=nope")
    assert response.status_code == 400 and response.json()["detail"] == "No service 'nope'."
    ServiceFactory(slug="bare")
    response = api_for("admin").get("/api/ops/queues?service=bare&queue=emails")
    assert response.status_code == 400 and response.json()["detail"].startswith("Service bare has no broker URL")


@pytest.mark.parametrize(
    ("action", "slug", "refused"),
    [
        ("queue_pause", None, None),  # no target service: the portal's own workers
        ("queue_pause", "ops-portal", None),  # the service standing for the portal: the portal's own
        ("queue_pause", "full", None),
        ("queue_pause", "bare", "Service bare has no broker URL"),
        ("cache_flush", "bare", "Service bare has no Redis URL"),
        ("analyze", "bare", "Service bare has no database URL"),
        ("failed_tasks", None, None),
        ("failed_tasks", "full", "failed_tasks acts on the portal itself, not on service full"),
        ("redis_check", None, "redis_check needs a target service with a Redis URL"),
        ("redis_check", "full", None),
        ("host_check", "bare", None),
    ],
)
def test_the_one_target_rule(action, slug, refused):
    urls = {"broker_url": "redis://jobs:6379/0", "redis_url": "redis://cache:6379/0", "database_url": "postgres://db/x"}
    services = {"bare": ServiceFactory(slug="bare"), "full": ServiceFactory(slug="full", **urls)}
    services["ops-portal"] = ServiceFactory(slug="ops-portal")
    problem = ACTIONS[action].refusal({}, services.get(slug))
    assert (problem or "").startswith(refused or "") and bool(problem) == bool(refused), problem


@pytest.mark.parametrize(
    ("action", "params", "label"),
    [
        ("queue_pause", {"queue": "runbooks"}, "broker URL"),
        ("cache_flush", {}, "Redis URL"),
        ("analyze", {}, "database URL"),
    ],
)
def test_a_run_with_a_remediation_step_its_target_cannot_serve_is_refused(api, action, params, label):
    bare = ServiceFactory(slug="bare")
    runbook = make_runbook("Remediate", steps=[auto(action, params, title="Fix it")], services=[bare])
    response = api.post("/api/runs/", {"runbook": runbook.pk, "target": bare.pk}, format="json")
    assert response.status_code == 400
    assert (
        f"step 1 ({action}): Service bare has no {label}: set one on the service (admin → Services) "
        f"to run {action} against it." in response.json()["detail"]
    )
    assert not RunbookRun.objects.exists() and not AuditRecord.objects.exists()


@pytest.mark.parametrize(
    ("action", "params", "label"),
    [
        ("queue_pause", {"queue": "runbooks"}, "broker URL"),
        ("cache_flush", {}, "Redis URL"),
        ("analyze", {}, "database URL"),
    ],
)
def test_without_a_target_a_runbook_for_another_service_never_acts_on_the_portal(api, action, params, label):
    bare = ServiceFactory(slug="bare")  # no broker, Redis or database URL: no default target can be chosen
    runbook = make_runbook("Remediate", steps=[auto(action, params, title="Fix it")], services=[bare])
    response = api.post("/api/runs/", {"runbook": runbook.pk}, format="json")
    assert response.status_code == 400
    assert (
        f"step 1 ({action}): {action} would act on the portal's own {label} but Remediate is for bare: "
        f"choose a target service with a {label} (or ops-portal for the portal)" in response.json()["detail"]
    )
    assert not RunbookRun.objects.exists() and not AuditRecord.objects.exists()


def test_a_runbook_for_no_service_or_run_on_ops_portal_acts_on_the_portal(api):
    steps = [auto("queue_pause", {"queue": "runbooks"}, title="Pause")]
    portal = ServiceFactory(slug="ops-portal")
    for_the_portal = make_runbook("Portal chores", steps=steps)
    for_another = make_runbook("Bare chores", steps=steps, services=[ServiceFactory(slug="bare")])
    assert api.post("/api/runs/", {"runbook": for_the_portal.pk}, format="json").status_code == 201
    chosen = api.post("/api/runs/", {"runbook": for_another.pk, "target": portal.pk}, format="json")
    assert chosen.status_code == 201, chosen.json()


@pytest.mark.django_db
def test_a_first_look_skips_portal_checks_of_a_runbook_for_another_service(responder):
    bare = ServiceFactory(slug="bare")
    incident = IncidentFactory(title="Jobs piling up", created_by=responder)
    runbook = make_runbook(
        "Jobs",
        steps=[auto("queue_stats", {}, title="Queue depth"), auto("host_check", {"check": "disk"}, title="Disk")],
        services=[bare],
    )
    run = RunbookRun.start(runbook, by=None, incident=incident, first_look="JobsPilingUp")
    assert [s.step.action for s in run.step_runs.select_related("step")] == ["host_check"]


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_step_whose_service_lost_its_setting_fails_and_leaves_the_portal_alone(celery_worker, responder, responder2):
    cache.set("ops-test:portal-keeps-this", "yes", 300)
    sessions = ServiceFactory(slug="sessions", redis_url="redis://127.0.0.1:6399/0")
    incident = IncidentFactory(title="Stale sessions", created_by=responder)
    runbook = make_runbook(
        "Flush sessions", steps=[auto("cache_flush", {}, title="Flush the cache")], services=[sessions]
    )
    run = RunbookRun.start(runbook, by=responder, incident=incident, target=sessions)
    waiting = wait_for(
        lambda: RunbookRun.objects.filter(pk=run.pk, state="waiting_approval").first(), message="the approval"
    )
    Service.objects.filter(pk=sessions.pk).update(redis_url="")  # an admin clears it while the step waits
    waiting.approve_step(waiting.step_runs.get().pk, by=responder2, note="go")
    done = wait_for(
        lambda: RunbookRun.objects.filter(pk=run.pk, state__in=["succeeded", "failed"]).first(), message="the run"
    )
    message = (
        "Service sessions has no Redis URL: set one on the service (admin → Services) to run cache_flush against it."
    )
    step = done.step_runs.get()
    assert (done.state, step.state, step.output, step.result["error"]) == ("failed", "failed", message, message)
    bodies = TimelineEvent.objects.filter(incident=incident, kind="runbook").values_list("body", flat=True)
    # One entry for the finished step: what it found, then what ran where.
    assert f"Step 1/1 **Flush the cache** failed: {message} — `{step.describe()}` on **sessions**" in bodies
    assert cache.get("ops-test:portal-keeps-this") == "yes"  # the portal's own cache was not flushed instead
    audit = AuditRecord.objects.get()
    assert (audit.action, audit.target, audit.ok, audit.summary) == ("cache_flush", "sessions", False, message)


def test_invalidating_a_pattern_on_a_target_redis(api_for, redis_keys, redis_url):  # noqa: F811
    client, prefix = redis_keys
    for n in range(3):
        client.set(f"{prefix}sessions:{n}", "x")
    client.set(f"{prefix}keep", "x")
    ServiceFactory(slug="cosmetica-redis", redis_url=redis_url)
    body = {"service": "cosmetica-redis", "pattern": f"{prefix}sessions:*"}
    response = api_for("admin").post("/api/ops/cache/invalidate", body, format="json")
    assert response.status_code == 200 and response.json()["detail"].startswith("Deleted 3 key(s)")
    assert sorted(client.scan_iter(match=prefix + "*")) == [f"{prefix}keep"]
    assert AuditRecord.objects.get().target == "cosmetica-redis"


def test_purging_a_target_queue_takes_two_admins(api_for, redis_url, incident):  # noqa: F811
    producer = Celery("ops-test-producer", broker=redis_url, set_as_current=False)
    queue = f"ops-target-{int(time.time() * 1000)}"
    for n in range(3):
        producer.send_task("tests.nothing", args=[n], queue=queue)
    ServiceFactory(slug="jobs", broker_url=redis_url)
    stats = api_for("admin").get(f"/api/ops/queues?service=jobs&queue={queue}")
    assert stats.status_code == 200 and stats.json()["result"]["queues"][queue]["waiting"] == 3
    body = {
        "action": "purge_queue",
        "service": "jobs",
        "params": {"queue": queue},
        "reason": "poison",
        "incident": incident.pk,
    }
    asked = api_for("admin").post("/api/ops/requests", body, format="json")
    assert asked.status_code == 202 and asked.json()["service"] == "jobs"
    assert asked.json()["preview"]["summary"] == f"Dry run: would delete the 3 message(s) waiting on {queue}."
    approvals.approve(asked.json()["id"], by=UserFactory(role="admin"))
    done = approvals.execute(asked.json()["id"])
    assert (done.state, done.summary) == ("succeeded", f"Purged 3 message(s) from {queue}.")
    assert AuditRecord.objects.get(dry_run=False).target == "jobs"
