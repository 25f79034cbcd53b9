"""The ops API pointed at a target service (its broker, Redis or database URL) instead of the
portal: refused clearly when the service cannot serve the action, never falling back to the
portal's own queues or cache; run against real Redis when it can."""

import time

import pytest
from celery import Celery

from ops import approvals
from ops.models import ActionRequest, AuditRecord
from tests.factories import ServiceFactory, UserFactory
from tests.runbooks.conftest import redis_keys, redis_url  # noqa: F401

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
