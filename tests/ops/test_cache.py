"""The tagged cache: invalidating a tag removes exactly the keys cached under it; the dashboard's
figures are cached under `dashboard` and invalidated when an incident changes."""

import pytest
from django.core.cache import cache

from incidents import dashboard
from opsportal import tagged_cache
from tests.factories import IncidentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def known_tags(monkeypatch):
    monkeypatch.setitem(tagged_cache.TAGS, "test-a", "test tag a")
    monkeypatch.setitem(tagged_cache.TAGS, "test-b", "test tag b")
    yield
    tagged_cache.invalidate(["test-a", "test-b"])
    cache.delete_many(["a1", "a2", "b1", "untagged"])


def test_invalidating_a_tag_removes_exactly_its_keys(api_for, known_tags):
    tagged_cache.set_tagged("a1", "x", tags=["test-a"], timeout=60)
    tagged_cache.set_tagged("a2", "x", tags=["test-a", "test-b"], timeout=60)
    tagged_cache.set_tagged("b1", "x", tags=["test-b"], timeout=60)
    cache.set("untagged", "x", 60)
    response = api_for("admin").post("/api/ops/cache/invalidate", {"tags": ["test-a"]}, format="json")
    assert response.status_code == 200 and response.json()["detail"] == "Invalidated 2 key(s) tagged test-a"
    assert cache.get_many(["a1", "a2", "b1", "untagged"]) == {"b1": "x", "untagged": "x"}


def test_a_dry_run_lists_the_keys(api_for, known_tags):
    tagged_cache.set_tagged("a1", "x", tags=["test-a"], timeout=60)
    body = api_for("admin").post("/api/ops/cache/invalidate", {"tags": ["test-a"], "dry_run": True}, format="json")
    assert body.json()["result"]["keys"] == {"test-a": [cache.make_key("a1")]}
    assert cache.get("a1") == "x"


def test_dashboard_figures_are_cached_and_invalidated(client, viewer):
    client.force_login(viewer)
    assert client.get("/").status_code == 200
    assert tagged_cache.tagged_keys("dashboard") == [cache.make_key("dashboard:response_times")]
    IncidentFactory()
    assert tagged_cache.tagged_keys("dashboard") == []
    assert cache.get("dashboard:response_times") is None


def test_the_dashboard_is_served_from_the_cache(client, viewer, django_assert_num_queries):
    client.force_login(viewer)
    client.get("/")
    cached = cache.get("dashboard:response_times")
    assert cached == dashboard.cached_response_times(None)  # no query, no `now` needed: it comes from the cache


@pytest.mark.parametrize("pattern", ["*", "**", "?"])
def test_a_pattern_matching_everything_needs_the_dangerous_flag(pattern):
    from runbooks.actions import ACTIONS, ParamsError

    action = ACTIONS["cache_invalidate"]
    with pytest.raises(ParamsError, match="matches every key"):
        action.validate({"pattern": pattern})
    params = action.validate({"pattern": pattern, "dangerous": True})
    assert action.safety_of(params) == "dangerous"
    assert action.safety_of(action.validate({"pattern": "sessions:*"})) == "change"
