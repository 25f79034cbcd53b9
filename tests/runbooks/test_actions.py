"""Each action against a real service: a local HTTP server, the CI PostgreSQL and Redis, this host."""

import threading

import psycopg
import pytest

from incidents.models import Service
from opsportal.connections import Masker
from runbooks.actions import ACTIONS, ActionError, ParamsError, StepTimeout, Target, TransientError
from tests.runbooks.conftest import free_port, wait_for


def run(action: str, params: dict, timeout: float = 5, **settings):
    service = Service(slug="svc", name="Svc", **settings)
    target = Target(service, Masker())
    return ACTIONS[action].run(ACTIONS[action].validate(params), target, timeout)


# --- http_check ---------------------------------------------------------------------------


def test_http_check_reports_status_latency_and_body(http_service):
    result = run("http_check", {"path": "/health"}, base_url=http_service)
    assert result.status == "ok"
    assert result.figures["status_code"] == 200 and result.figures["latency_ms"] >= 0
    assert result.summary.startswith("HTTP 200 in ")
    assert '"status": "ok"' in result.data["body_excerpt"]


def test_http_check_is_critical_on_an_unexpected_status_or_body(http_service):
    ready = run("http_check", {"path": "/ready"}, base_url=http_service)
    assert ready.status == "critical" and "HTTP 503" in ready.summary and "expected 200" in ready.summary
    body = run("http_check", {"path": "/health", "contains": "degraded"}, base_url=http_service)
    assert body.status == "critical" and "body lacks 'degraded'" in body.summary


def test_http_check_warns_when_slower_than_the_threshold(http_service):
    result = run("http_check", {"path": "/slow?ms=300", "max_latency_ms": 50}, base_url=http_service)
    assert result.status == "warning" and "slower than 50 ms" in result.summary


def test_http_check_head_and_absolute_url(http_service):
    result = run("http_check", {"url": f"{http_service}/health", "method": "HEAD"}, base_url=http_service)
    assert result.status == "ok" and result.output.startswith("HEAD ")


def test_http_check_times_out(http_service):
    with pytest.raises(StepTimeout, match=r"No answer from .* within 0\.3 s"):
        run("http_check", {"path": "/slow?ms=2000"}, timeout=0.3, base_url=http_service)


def test_http_check_unreachable_target_is_a_transient_error(closed_port_url):
    with pytest.raises(TransientError, match=r"Could not connect to http://127\.0\.0\.1:\d+/health"):
        run("http_check", {"path": "/health"}, base_url=closed_port_url)


def test_http_check_refuses_writes_and_non_http_urls(monkeypatch):
    with pytest.raises(ParamsError, match="GET or HEAD"):
        ACTIONS["http_check"].validate({"path": "/health", "method": "POST"})
    with pytest.raises(ParamsError, match="must not contain a password"):
        ACTIONS["http_check"].validate({"url": "http://u:secret@host/health"})
    monkeypatch.setenv("LOCAL_FILE_URL", "file:///etc/passwd")
    with pytest.raises(ActionError, match="Only http and https"):
        run("http_check", {"path": "/health"}, base_url="env:LOCAL_FILE_URL")


def test_http_check_needs_a_base_url():
    with pytest.raises(ActionError, match="base URL is not configured"):
        run("http_check", {"path": "/health"})


# --- host_check ---------------------------------------------------------------------------


def test_host_check_disk_lists_filesystems_with_used_percent(tmp_path):
    result = run("host_check", {"check": "disk", "paths": [str(tmp_path)]})
    figures = result.figures["filesystems"][str(tmp_path)]
    assert 0 <= figures["used_percent"] <= 100 and figures["total_bytes"] > 0
    assert result.status in {"ok", "warning", "critical"} and "Use%" in result.output
    everything = run("host_check", {"check": "disk"})
    assert everything.figures["filesystems"]


def test_host_check_memory_against_thresholds():
    result = run("host_check", {"check": "memory", "warn_percent": 1, "critical_percent": 100})
    assert 0 < result.figures["used_percent"] < 100
    assert result.status == "warning" and result.summary.startswith("Memory ")
    relaxed = run("host_check", {"check": "memory", "warn_percent": 100, "critical_percent": 100})
    assert relaxed.status == "ok"


def test_host_check_thresholds_must_make_sense():
    with pytest.raises(ParamsError, match="warn_percent must not be above critical_percent"):
        ACTIONS["host_check"].validate({"check": "disk", "warn_percent": 95, "critical_percent": 90})


# --- prometheus_query ---------------------------------------------------------------------


def test_prometheus_query_lists_series_and_applies_thresholds(http_service):
    result = run("prometheus_query", {"query": "topk(10, errors)"}, prometheus_url=http_service)
    assert result.status == "ok" and result.figures["series"] == 2 and result.figures["max"] == 0.5
    assert 'errors{path="/api/sales/1/transition/", status="500"} 0.5' in result.output
    warned = run("prometheus_query", {"query": "errors", "warn_above": 0.4}, prometheus_url=http_service)
    assert warned.status == "warning"
    empty = run("prometheus_query", {"query": "nothing"}, prometheus_url=http_service)
    assert empty.status == "ok" and "matched nothing" in empty.summary


def test_prometheus_query_error_is_reported(http_service):
    with pytest.raises(ActionError, match="Prometheus rejected the query \\(bad_data: 1:5: parse error"):
        run("prometheus_query", {"query": "bad(query"}, prometheus_url=http_service)


# --- postgres_query -----------------------------------------------------------------------


def test_postgres_builtin_checks(pg_dsn):
    select = run("postgres_query", {"check": "select_1"}, database_url=pg_dsn)
    assert select.status == "ok" and "PostgreSQL" in select.summary
    connections = run("postgres_query", {"check": "connections_by_state"}, database_url=pg_dsn)
    assert connections.figures["connections"] >= 1 and connections.figures["max_connections"] > 0
    assert connections.data["columns"] == ["state", "connections"]
    sizes = run("postgres_query", {"check": "table_sizes", "limit": 5}, database_url=pg_dsn)
    assert sizes.status == "ok" and sizes.data["row_count"] == 5
    unused = run("postgres_query", {"check": "unused_indexes"}, database_url=pg_dsn)
    assert unused.status in {"ok", "warning"} and unused.data["columns"][:3] == ["schema", "table", "index"]


def test_postgres_slow_queries_without_pg_stat_statements_says_so(pg_dsn):
    result = run("postgres_query", {"check": "slow_queries"}, database_url=pg_dsn)
    assert result.status == "warning" and "pg_stat_statements" in result.summary


def test_postgres_long_running_queries_sees_a_slow_session(pg_dsn):
    started = threading.Event()

    def sleeper():
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            started.set()
            conn.execute("SELECT pg_sleep(3)")

    thread = threading.Thread(target=sleeper)
    thread.start()
    started.wait(5)

    def found():
        result = run(
            "postgres_query",
            {"check": "long_running_queries", "min_seconds": 1, "warn_seconds": 1},
            database_url=pg_dsn,
        )
        # Other sessions on a shared server may hold long queries too: wait for this one.
        return result if "pg_sleep" in result.output else None

    result = wait_for(found, timeout=10, message="pg_sleep to show up")
    thread.join()
    assert result.status == "warning" and "pg_sleep" in result.output


def test_postgres_custom_read_only_query_returns_rows(pg_dsn):
    result = run("postgres_query", {"sql": "SELECT 2 AS answer, 'x' AS letter"}, database_url=pg_dsn)
    assert result.summary == "1 row" and result.data["rows"] == [[2, "x"]]
    one = run("postgres_query", {"sql": "SELECT count(*) AS n FROM pg_stat_activity"}, database_url=pg_dsn)
    assert one.summary.startswith("1 row: n = ")


def test_postgres_statement_timeout_stops_a_slow_query(pg_dsn):
    with pytest.raises(StepTimeout, match="cancelled by the 1 s statement timeout"):
        run("postgres_query", {"sql": "SELECT pg_sleep(5)"}, timeout=1, database_url=pg_dsn)


@pytest.mark.django_db(transaction=True)
def test_postgres_session_is_read_only_even_when_the_parser_is_fooled(pg_dsn, monkeypatch):
    from django.db import connection

    from runbooks.actions import postgres

    # The guard refuses a user's own function before connecting; fool it to reach the server's guard.
    with pytest.raises(ParamsError, match=r"runbook_bump\(\), which is not on the list"):
        run("postgres_query", {"sql": "SELECT runbook_bump()"}, database_url=pg_dsn)
    monkeypatch.setattr(postgres, "check_read_only", lambda sql: sql)

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE runbook_probe (n int)")
        cursor.execute(
            "CREATE FUNCTION runbook_bump() RETURNS int "
            "AS 'INSERT INTO runbook_probe VALUES (1) RETURNING 1' LANGUAGE sql"
        )
    try:
        with pytest.raises(ActionError, match="read-only"):
            run("postgres_query", {"sql": "SELECT runbook_bump()"}, database_url=pg_dsn)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM runbook_probe")
            assert cursor.fetchone()[0] == 0
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP FUNCTION runbook_bump(); DROP TABLE runbook_probe")


def test_postgres_refuses_sql_that_is_not_read_only_before_connecting():
    with pytest.raises(ParamsError, match="Not a read-only query: it starts with DELETE"):
        run("postgres_query", {"sql": "DELETE FROM auth_user"}, database_url="postgres://nobody@127.0.0.1:1/x")


def test_postgres_unreachable_and_refused_connections(pg_dsn):
    with pytest.raises(TransientError, match="Could not connect to the database"):
        run("postgres_query", {"check": "select_1"}, database_url=f"postgres://postgres@127.0.0.1:{free_port()}/x")
    with pytest.raises(ActionError, match='database "no_such_db_for_runbooks" does not exist'):
        run("postgres_query", {"check": "select_1"}, database_url=pg_dsn.rsplit("/", 1)[0] + "/no_such_db_for_runbooks")


# --- redis_check --------------------------------------------------------------------------


def test_redis_ping_info_and_dbsize(redis_url):
    assert run("redis_check", {"check": "ping"}, redis_url=redis_url).summary.startswith("PONG in ")
    memory = run("redis_check", {"check": "info_memory"}, redis_url=redis_url)
    assert memory.figures["used_memory"] > 0 and memory.status in {"ok", "warning", "critical"}
    info = run("redis_check", {"check": "info"}, redis_url=redis_url)
    assert info.summary.startswith("Redis ")
    assert run("redis_check", {"check": "dbsize"}, redis_url=redis_url).figures["keys"] >= 0


def test_redis_hit_rate_counts_hits_and_misses(redis_url, redis_keys):
    client, prefix = redis_keys
    client.set(f"{prefix}hit", "1")
    client.get(f"{prefix}hit")
    client.get(f"{prefix}miss")
    result = run("redis_check", {"check": "hit_rate"}, redis_url=redis_url)
    assert result.figures["hits"] >= 1 and result.figures["misses"] >= 1
    assert 0 < result.figures["hit_rate_percent"] < 100 and result.summary.startswith("Hit rate ")


def test_redis_count_keys_uses_scan_and_ttl(redis_url, redis_keys):
    client, prefix = redis_keys
    for n in range(25):
        client.set(f"{prefix}k{n}", n, ex=600 if n == 0 else None)
    counted = run("redis_check", {"check": "count_keys", "pattern": f"{prefix}k*"}, redis_url=redis_url)
    assert counted.figures == {"keys": 25, "complete": True} and len(counted.data["sample"]) == 20
    warned = run(
        "redis_check", {"check": "count_keys", "pattern": f"{prefix}k*", "warn_above": 10}, redis_url=redis_url
    )
    assert warned.status == "warning"
    ttl = run("redis_check", {"check": "ttl", "key": f"{prefix}k0"}, redis_url=redis_url)
    assert 0 < ttl.figures["ttl"] <= 600 and ttl.status == "ok"
    missing = run("redis_check", {"check": "ttl", "key": f"{prefix}nope"}, redis_url=redis_url)
    assert missing.status == "warning" and "does not exist" in missing.summary


def test_redis_unreachable_is_transient():
    with pytest.raises(TransientError, match="Could not connect to Redis"):
        run("redis_check", {"check": "ping"}, redis_url=f"redis://127.0.0.1:{free_port()}/0")


def test_redis_check_refuses_unknown_checks():
    with pytest.raises(ParamsError, match="check must be one of"):
        ACTIONS["redis_check"].validate({"check": "flushall"})
    with pytest.raises(ParamsError, match="count_keys needs pattern"):
        ACTIONS["redis_check"].validate({"check": "count_keys"})
