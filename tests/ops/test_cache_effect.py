"""The two-admin rule for cache invalidation is decided by effect, not by the pattern's syntax:
`[^~]*` deletes every key as surely as `*`. On real Redis: the keys are counted first (SCAN), and
every key, or more than OPS_CACHE_INVALIDATE_MAX_KEYS, needs another admin's approval."""

import pytest
from django.core.cache import cache

from ops import approvals
from ops.choices import RequestState
from ops.models import ActionRequest
from opsportal.connections import Masker
from runbooks.actions import ACTIONS, Target
from runbooks.models import RunbookRun
from tests.factories import ServiceFactory, UserFactory
from tests.runbooks.conftest import auto, make_runbook
from tests.runbooks.test_runs import steps, work

pytestmark = pytest.mark.django_db
INVALIDATE = "/api/ops/cache/invalidate"


@pytest.fixture
def api2(db):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(UserFactory(username="second-admin", role="admin"))
    return client


@pytest.fixture
def six_keys(redis_keys, redis_url, settings):
    settings.OPS_CACHE_INVALIDATE_MAX_KEYS = 5
    client, prefix = redis_keys
    for n in range(6):
        client.set(f"{prefix}user:{n}", "x")
    return client, prefix, ServiceFactory(slug="cache", redis_url=redis_url)


@pytest.fixture
def portal_keys(redis_url):
    cache.set("ops-effect:a", "x", 60)
    cache.set("ops-effect:b", "x", 60)
    yield
    cache.delete_many(["ops-effect:a", "ops-effect:b"])


def test_a_pattern_matching_more_keys_than_the_limit_is_refused_on_a_target(api_for, six_keys):
    client, prefix, _service = six_keys
    response = api_for("admin").post(INVALIDATE, {"service": "cache", "pattern": f"{prefix}[^~]*"}, format="json")
    assert response.status_code == 409
    assert "matches more than 5 keys (OPS_CACHE_INVALIDATE_MAX_KEYS)" in response.json()["detail"]
    assert "another admin must approve it" in response.json()["detail"]
    assert len(list(client.scan_iter(match=prefix + "*"))) == 6  # nothing deleted


def test_a_pattern_within_the_limit_runs_at_once(api_for, six_keys):
    client, prefix, _service = six_keys
    response = api_for("admin").post(INVALIDATE, {"service": "cache", "pattern": f"{prefix}user:[0-2]"}, format="json")
    assert (
        response.status_code == 200 and response.json()["detail"] == f"Deleted 3 key(s) matching '{prefix}user:[0-2]'"
    )
    assert len(list(client.scan_iter(match=prefix + "*"))) == 3


def test_a_pattern_that_matches_every_portal_key_is_dangerous_whatever_its_syntax(api_for, api2, portal_keys):
    admin = api_for("admin")
    refused = admin.post(INVALIDATE, {"pattern": "[^~]*"}, format="json")
    assert refused.status_code == 409 and "matches every key of the cache" in refused.json()["detail"]
    assert cache.get("ops-effect:a") == "x"

    dry = admin.post(INVALIDATE, {"pattern": "[^~]*", "dry_run": True}, format="json")
    assert dry.status_code == 200 and "needs another admin's approval" in dry.json()["detail"]
    assert dry.json()["result"]["dangerous"].startswith("matches every key")

    asked = admin.post(INVALIDATE, {"pattern": "[^~]*", "dangerous": True, "reason": "poisoned"}, format="json")
    assert asked.status_code == 202 and cache.get("ops-effect:a") == "x"
    row = ActionRequest.objects.get()
    assert api2.post(f"/api/ops/requests/{row.pk}/approve", {}, format="json").status_code == 202
    assert approvals.execute(row.pk).state == RequestState.SUCCEEDED
    assert cache.get("ops-effect:a") is None and cache.get("ops-effect:b") is None


def test_asked_for_without_the_flag_a_dangerous_effect_is_accepted_for_approval(api_for, api2, six_keys):
    client, prefix, _service = six_keys
    body = {"action": "cache_invalidate", "service": "cache", "params": {"pattern": f"{prefix}*"}, "reason": "stale"}
    response = api_for("admin").post("/api/ops/requests", body, format="json")
    assert response.status_code == 202, response.json()
    row = ActionRequest.objects.get()
    assert row.params == {"pattern": f"{prefix}*", "dangerous": True}
    api2.post(f"/api/ops/requests/{row.pk}/approve", {}, format="json")
    assert approvals.execute(row.pk).state == RequestState.SUCCEEDED
    assert list(client.scan_iter(match=prefix + "*")) == []


def test_a_small_pattern_is_not_an_approval_request(api_for, six_keys):
    _client, prefix, _service = six_keys
    body = {"action": "cache_invalidate", "service": "cache", "params": {"pattern": f"{prefix}user:1"}, "reason": "r"}
    response = api_for("admin").post("/api/ops/requests", body, format="json")
    assert response.status_code == 400 and "not dangerous" in response.json()["detail"]


def test_safety_of_measures_the_effect_when_the_target_is_known(six_keys):
    _client, prefix, service = six_keys
    action = ACTIONS["cache_invalidate"]
    params = action.validate({"pattern": f"{prefix}[^~]*"})
    assert action.safety_of(params) == "change"  # a runbook being stored: no target to measure
    assert action.safety_of(params, Target(service, Masker())) == "dangerous"
    small = action.validate({"pattern": f"{prefix}user:1"})
    assert action.safety_of(small, Target(service, Masker())) == "change"


def test_a_runbook_change_step_whose_effect_is_a_flush_deletes_nothing(responder, six_keys):
    client, prefix, service = six_keys
    runbook = make_runbook(
        steps=[auto("cache_invalidate", {"pattern": f"{prefix}[^~]*"}, safety="change")], services=[service]
    )
    run = RunbookRun.start(runbook, by=responder, target=service)
    run.approve_step(steps(run)[0].pk, by=responder)  # a change step: the starter may confirm it
    assert work(steps(run)[0]) == "failed"
    step = steps(run)[0]
    told = f"{step.output} {step.result}"
    assert "matches more than 5 keys" in told and "mark the runbook step dangerous" in told, told
    assert len(list(client.scan_iter(match=prefix + "*"))) == 6
