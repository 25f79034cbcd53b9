"""The remediation actions against real services: Postgres maintenance and terminating long
queries, pattern invalidation (SCAN + DEL) on a target's Redis, and targets that are down."""

import threading
import time

import psycopg
import pytest

from ops.audit import perform
from ops.models import AuditRecord
from runbooks.actions import ACTIONS, TransientError
from tests.factories import ServiceFactory
from tests.runbooks.conftest import free_port, wait_for

pytestmark = pytest.mark.django_db


def sleeper(dsn: str, seconds: int, outcome: dict, key: str) -> threading.Thread:
    def run():
        with psycopg.connect(dsn, application_name=f"ops-test-{key}") as conn:
            outcome[f"{key}_pid"] = conn.info.backend_pid
            try:
                conn.execute("SELECT pg_sleep(%s)", [seconds])
                outcome[key] = "finished"
            except psycopg.errors.QueryCanceled:
                outcome[key] = "cancelled"
            except psycopg.OperationalError:
                outcome[key] = "terminated"

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def active_pids(dsn: str) -> set[int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT pg_sleep%%'"
        )
        return {r[0] for r in rows}


@pytest.mark.postgres
def test_terminate_long_queries_kills_the_listed_pg_sleep_and_only_it(pg_dsn, admin_user):
    outcome: dict = {}
    old = sleeper(pg_dsn, 60, outcome, "old")
    wait_for(lambda: outcome.get("old_pid") in active_pids(pg_dsn), message="the old query to run")
    time.sleep(1.2)
    young = sleeper(pg_dsn, 60, outcome, "young")
    wait_for(lambda: outcome.get("young_pid") in active_pids(pg_dsn), message="the young query to run")
    try:
        dry = perform("terminate_long_queries", {"min_minutes": 1 / 60, "dry_run": True}, by=admin_user)
        assert [q["pid"] for q in dry.data["queries"]] == [outcome["old_pid"]]
        assert dry.summary.startswith("Dry run: 1 query running for")
        check = perform("terminate_long_queries", {"min_minutes": 1 / 60}, by=admin_user)
        assert check.data["terminated"] == [outcome["old_pid"]]
        assert "pg_sleep" in check.output  # the list it terminated
        old.join(10)
        assert outcome["old"] == "terminated"
        assert outcome["young_pid"] in active_pids(pg_dsn) and "young" not in outcome
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_cancel_backend(%s)", [outcome["young_pid"]])
        young.join(10)
    audit = AuditRecord.objects.filter(dry_run=False).get()
    assert (audit.action, audit.safety, audit.actor, audit.result["terminated"]) == (
        "terminate_long_queries", "dangerous", admin_user, [outcome["old_pid"]],
    )  # fmt: skip


@pytest.mark.postgres
@pytest.mark.parametrize(("action", "params", "sql"), [
    ("analyze", {}, "ANALYZE"),
    ("analyze", {"table": "incidents_incident"}, 'ANALYZE "incidents_incident"'),
    ("vacuum_analyze", {"table": "public.incidents_incident"}, 'VACUUM (ANALYZE) "public"."incidents_incident"'),
    ("reindex", {"table": "incidents_incident"}, 'REINDEX TABLE CONCURRENTLY "incidents_incident"'),
])  # fmt: skip
def test_maintenance_statements_run(pg_dsn, action, params, sql):
    target = ServiceFactory(slug="db", database_url=pg_dsn)
    check = perform(action, params, service=target)
    assert check.summary == f"{sql} done."
    assert AuditRecord.objects.get().target == "db"


@pytest.mark.postgres
def test_an_unknown_table_is_a_clear_error(pg_dsn):
    from runbooks.actions import ActionError

    with pytest.raises(ActionError, match="No table 'nope'"):
        perform("analyze", {"table": "nope"}, service=ServiceFactory(slug="db", database_url=pg_dsn))


@pytest.mark.parametrize("name", ["x; DROP TABLE y", "a.b.c", "1abc", ""])
def test_table_names_are_checked(name):
    from runbooks.actions import ParamsError

    with pytest.raises(ParamsError):
        ACTIONS["analyze"].validate({"table": name})


def test_pattern_invalidation_on_a_target_redis_scans_and_deletes_in_batches(redis_keys, redis_url):
    client, prefix = redis_keys
    for n in range(1200):
        client.set(f"{prefix}session:{n}", "x")
    client.set(f"{prefix}keep:1", "x")
    target = ServiceFactory(slug="cache", redis_url=redis_url)
    dry = perform("cache_invalidate", {"pattern": f"{prefix}session:*", "dry_run": True}, service=target)
    assert dry.data["matched"] == 1200 and client.exists(f"{prefix}session:1")
    check = perform("cache_invalidate", {"pattern": f"{prefix}session:*"}, service=target)
    assert check.summary == f"Deleted 1200 key(s) matching '{prefix}session:*'"
    assert sorted(client.scan_iter(match=prefix + "*")) == [f"{prefix}keep:1"]


def test_a_target_that_is_down_is_a_clear_error_and_nothing_changes(api_for):
    down = ServiceFactory(
        slug="down", broker_url=f"redis://127.0.0.1:{free_port()}/0", redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    with pytest.raises(TransientError, match=r"not reachable|Could not reach"):
        perform("queue_stats", {"queue": "celery"}, service=down, timeout=2)
    with pytest.raises(TransientError, match="Could not reach Redis"):
        perform("cache_invalidate", {"pattern": "x:*"}, service=down, timeout=2)
    failed = AuditRecord.objects.get()
    assert failed.action == "cache_invalidate" and not failed.ok and "Could not reach Redis" in failed.summary


def test_purge_queue_empties_a_target_queue(redis_url):
    from celery import Celery

    producer = Celery("ops-test-producer", broker=redis_url, set_as_current=False)
    queue = f"ops-test-{int(time.time() * 1000)}"
    for n in range(3):
        producer.send_task("tests.nothing", args=[n], queue=queue)
    target = ServiceFactory(slug="jobs", broker_url=redis_url)
    dry = perform("purge_queue", {"queue": queue, "dry_run": True}, service=target)
    assert dry.summary == f"Dry run: would delete the 3 message(s) waiting on {queue}."
    assert perform("purge_queue", {"queue": queue}, service=target).summary == f"Purged 3 message(s) from {queue}."
    assert perform("queue_stats", {"queue": queue}, service=target, timeout=2).data["queues"][queue]["waiting"] == 0
    assert [a.safety for a in AuditRecord.objects.order_by("id")] == ["dangerous", "dangerous"]


def test_purge_queue_needs_a_known_queue_on_the_portal():
    from runbooks.actions import ParamsError

    with pytest.raises(ParamsError, match="Unknown queue 'nope'"):
        perform("purge_queue", {"queue": "nope", "dry_run": True})


def test_remove_task_gives_up_on_failed_tasks(admin_user):
    from ops.models import FailedTask

    task = FailedTask.objects.create(task_id="t", name="x", exception="E")
    check = perform("remove_task", {"ids": [task.pk]}, by=admin_user)
    assert check.summary == "Removed 1 failed task(s); they will not be retried."
    task.refresh_from_db()
    assert task.removed_at and task.handled_by == admin_user
    assert not FailedTask.objects.waiting().exists()


def test_cache_warm_fills_the_dashboard_tag():
    from opsportal import tagged_cache

    assert tagged_cache.tagged_keys("dashboard") == []
    assert perform("cache_warm", {}).summary == "Warmed: dashboard response times."
    assert len(tagged_cache.tagged_keys("dashboard")) == 1


def test_cache_flush_of_the_portal_deletes_only_its_own_keys(redis_url):
    import redis
    from django.core.cache import cache

    from ops import maintenance

    raw = redis.Redis.from_url(redis_url)
    raw.set("ops-test-foreign", "broker data")
    cache.set("ops-test-own", "x", 60)
    try:
        check = perform("cache_flush", {})
        assert check.summary.startswith("Flushed ")
        assert cache.get("ops-test-own") is None and raw.get("ops-test-foreign") == b"broker data"
        assert maintenance.is_on() is False  # the switch's copy is refilled from its row
    finally:
        raw.delete("ops-test-foreign")
