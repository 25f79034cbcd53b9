"""Read-only SQL by construction: hostile queries refused before any connection, diagnostics still run."""

import contextlib
import uuid

import psycopg
import pytest

from incidents.models import Service
from opsportal.connections import Masker
from runbooks.actions import ACTIONS, ActionError, Target
from runbooks.actions import postgres as postgres_action
from runbooks.actions.postgres import ALLOWED_FUNCTIONS, UnsafeSQL, check_read_only
from runbooks.importer import import_document
from runbooks.models import RunbookStep
from tests.runbooks.conftest import SEEDS

# The bypasses issue 12 names: each passed the sqlparse guard and acted on the server.
ISSUE_BYPASSES = [
    # `\'` does not escape a quote in PostgreSQL: the middle call is code, not text.
    ("SELECT '\\' AS a, pg_terminate_backend(4242) AS b, '\\' AS c", "pg_terminate_backend"),
    ("SELECT pg_read_file('/etc/passwd')", "pg_read_file"),
    ("SELECT * FROM ts_stat('DELETE FROM orders RETURNING to_tsvector(note)')", "ts_stat"),
    ("SELECT ts_stat('SELECT to_tsvector(pg_terminate_backend(1)::text)')", "ts_stat"),
    ("SELECT pg_cancel_backend(4242)", "pg_cancel_backend"),
    ("SELECT pg_reload_conf()", "pg_reload_conf"),
    ("SELECT pg_advisory_lock(1)", "pg_advisory_lock"),
    ("SELECT query_to_xml('SELECT pg_terminate_backend(1)', true, true, '')", "query_to_xml"),
    ("SELECT * FROM dblink('dbname=orders', 'DELETE FROM orders') AS t(n int)", "dblink"),
]

# More of what an attacker with runbook-editing rights would try.
HOSTILE = [
    # Side-effect functions spelt so a tokenizer misses them.
    ("SELECT pg_catalog.pg_terminate_backend(4242)", "pg_terminate_backend"),
    ('SELECT "pg_terminate_backend"(4242)', "pg_terminate_backend"),
    ("SELECT PG_CANCEL_BACKEND(4242)", "pg_cancel_backend"),
    ('SELECT U&"\\0070g_terminate_backend"(1)', "U&"),
    ("SELECT $$ignored$$ || pg_terminate_backend(1)::text", "pg_terminate_backend"),
    ("SELECT E'\\'', pg_terminate_backend(1)", "pg_terminate_backend"),
    ("SELECT 1 -- harmless\n, pg_terminate_backend(1)", "pg_terminate_backend"),
    ("SELECT 1 /* nested /* comment */ */, pg_cancel_backend(1)", "pg_cancel_backend"),
    # Hidden in every clause a SELECT has.
    ("SELECT count(*) FROM pg_stat_activity WHERE pg_cancel_backend(pid)", "pg_cancel_backend"),
    ("SELECT * FROM pg_stat_activity, LATERAL pg_terminate_backend(pid) AS killed", "pg_terminate_backend"),
    ("SELECT count(*) FILTER (WHERE pg_cancel_backend(pid)) FROM pg_stat_activity", "pg_cancel_backend"),
    ("SELECT 1 ORDER BY pg_reload_conf()", "pg_reload_conf"),
    ("SELECT (SELECT pg_read_binary_file('/etc/shadow'))", "pg_read_binary_file"),
    ("WITH k AS (SELECT pg_terminate_backend(pid) FROM pg_stat_activity) SELECT * FROM k", "pg_terminate_backend"),
    ("SELECT * FROM ROWS FROM (pg_ls_dir('.')) AS f(name)", "pg_ls_dir"),
    ("SELECT 1 UNION SELECT pg_rotate_logfile()::int", "pg_rotate_logfile"),
    # Files, large objects, settings, sequences, locks, statistics, server control.
    ("SELECT lo_import('/etc/passwd')", "lo_import"),
    ("SELECT lo_export(1, '/tmp/owned')", "lo_export"),
    ("SELECT pg_stat_file('postgresql.conf')", "pg_stat_file"),
    ("SELECT set_config('default_transaction_read_only', 'off', false)", "set_config"),
    ("SELECT nextval('orders_id_seq')", "nextval"),
    ("SELECT setval('orders_id_seq', 1)", "setval"),
    ("SELECT pg_try_advisory_xact_lock(1)", "pg_try_advisory_xact_lock"),
    ("SELECT pg_stat_reset()", "pg_stat_reset"),
    ("SELECT pg_stat_statements_reset()", "pg_stat_statements_reset"),
    ("SELECT pg_switch_wal()", "pg_switch_wal"),
    ("SELECT pg_promote()", "pg_promote"),
    ("SELECT pg_create_restore_point('x')", "pg_create_restore_point"),
    ("SELECT pg_notify('jobs', 'run')", "pg_notify"),
    ("SELECT txid_current()", "txid_current"),
    ("SELECT pg_log_backend_memory_contexts(1)", "pg_log_backend_memory_contexts"),
    # SQL in a string, and user code the target database may hold.
    ("SELECT table_to_xml('orders', true, true, '')", "table_to_xml"),
    ("SELECT cursor_to_xml('c', 1, true, true, '')", "cursor_to_xml"),
    ("SELECT dblink_exec('dbname=orders', 'DROP TABLE orders')", "dblink_exec"),
    ("SELECT public.cleanup_old_orders()", "public.cleanup_old_orders"),
    ("SELECT archive_everything()", "archive_everything"),
    ("SELECT 1 OPERATOR(public.===) 2", "==="),
    ("SELECT '1'::public.evil_type", "public.evil_type"),
    ("SELECT xmlparse(document '<!DOCTYPE x SYSTEM \"file:///etc/passwd\"><x/>')", "XML"),
    # Writes, row locks and tables from a SELECT.
    ("WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d", "DELETE"),
    ("WITH u AS (UPDATE orders SET total = 0 RETURNING *) SELECT * FROM u", "UPDATE"),
    ("WITH i AS (INSERT INTO orders DEFAULT VALUES RETURNING *) SELECT * FROM i", "INSERT"),
    ("SELECT * FROM orders FOR UPDATE", "FOR UPDATE"),
    ("SELECT * FROM orders FOR NO KEY UPDATE SKIP LOCKED", "FOR UPDATE"),
    ("SELECT * FROM orders FOR KEY SHARE", "FOR SHARE"),
    ("SELECT * INTO TEMP stolen FROM orders", "INTO"),
    ("EXPLAIN ANALYZE DELETE FROM orders", "ANALYZE"),
    ("EXPLAIN (ANALYZE, BUFFERS) SELECT pg_sleep(1)", "ANALYZE"),
    ("EXPLAIN DELETE FROM orders", "DELETE"),
    # Not a query at all, or more than one.
    ("SELECT 1; SELECT pg_terminate_backend(1)", "Only one statement"),
    ("SELECT 1 /* ; */ ; DELETE FROM orders", "Only one statement"),
    ("CREATE TABLE stolen AS SELECT * FROM orders", "starts with CREATE"),
    ("COPY (SELECT 1) TO PROGRAM 'id'", "starts with COPY"),
    ("DO $$ BEGIN PERFORM pg_terminate_backend(1); END $$", "starts with DO"),
    ("SET default_transaction_read_only = off", "starts with SET"),
    ("SET ROLE postgres", "starts with SET"),
    ("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE", "starts with LOCK"),
    ("CALL cleanup()", "starts with CALL"),
    ("LOAD 'evil'", "starts with LOAD"),
    ("COMMIT; DROP TABLE orders", "Only one statement"),
    ("SELECT 'unterminated", "Not valid SQL"),
]


def _refuses_before_connecting(monkeypatch, sql, reason):
    connects = []
    monkeypatch.setattr(postgres_action.psycopg, "connect", lambda *a, **k: connects.append(a))
    service = Service(slug="orders", name="Orders", database_url="postgres://steps@db.internal:5432/orders")
    action = ACTIONS["postgres_query"]
    with pytest.raises(UnsafeSQL, match=reason.replace("(", r"\(").replace("$", r"\$")):
        action.run({"sql": sql}, Target(service, Masker()), 5)
    with pytest.raises(UnsafeSQL):
        check_read_only(sql)  # what the import and the API use to judge a step
    assert connects == []


@pytest.mark.parametrize(("sql", "reason"), ISSUE_BYPASSES)
def test_the_bypasses_of_issue_12_are_refused_before_any_connection(monkeypatch, sql, reason):
    _refuses_before_connecting(monkeypatch, sql, reason)


@pytest.mark.parametrize(("sql", "reason"), HOSTILE)
def test_hostile_queries_are_refused_before_any_connection(monkeypatch, sql, reason):
    _refuses_before_connecting(monkeypatch, sql, reason)


def test_a_runbook_with_the_backslash_bypass_is_refused_with_the_field_named(api_for):
    step = {"title": "x", "kind": "automated", "action": "postgres_query", "params": {"sql": ISSUE_BYPASSES[0][0]}}
    payload = {"title": "Sneaky", "sections": [{"title": "S"}], "steps": [step]}
    response = api_for("admin").post("/api/runbooks/", payload, format="json")
    assert response.status_code == 400
    assert "steps[0].params" in str(response.json()) and "pg_terminate_backend()" in str(response.json())


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT now() AT TIME ZONE 'UTC', extract(epoch FROM now() - interval '5 minutes')::int",
        "SELECT trim(both ' ' FROM ' x '), substring('abc' FROM 2), position('b' IN 'abc'), 'a' SIMILAR TO 'a'",
        "SELECT coalesce(NULL, 1), nullif(1, 2), greatest(1, 2), CASE WHEN true THEN 'y' END, current_user",
        "SELECT datname, pg_size_pretty(pg_database_size(datname)) FROM pg_database ORDER BY 2 DESC LIMIT 5",
        "SELECT pid, pg_blocking_pids(pid) FROM pg_stat_activity WHERE cardinality(pg_blocking_pids(pid)) > 0",
        "SELECT relname, n_dead_tup, rank() OVER (ORDER BY n_dead_tup DESC) FROM pg_stat_user_tables",
        "(SELECT 1) UNION ALL (SELECT 2)",
        "VALUES (1, 'a'), (2, 'b')",
        "TABLE pg_stat_database",
        "EXPLAIN (FORMAT JSON) SELECT * FROM pg_class",
        "SHOW ALL",
        "SELECT 'SELECT pg_terminate_backend(1)' AS just_text -- a comment: pg_reload_conf()",
    ],
)
def test_everyday_diagnostics_are_accepted(sql):
    assert check_read_only(sql)


def test_the_statement_that_runs_is_the_one_judged_without_comments():
    assert check_read_only("-- Active sessions\nSELECT count(*) /* all */ FROM pg_stat_activity; -- done\n") == (
        "SELECT count(*)   FROM pg_stat_activity"
    )
    assert check_read_only("SELECT 'é -- not a comment' AS t -- é\n;") == "SELECT 'é -- not a comment' AS t"


def test_the_allow_list_holds_no_function_that_acts_on_the_server():
    acting = {"pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_read_file", "set_config", "ts_stat"}
    assert not acting & ALLOWED_FUNCTIONS
    assert {"count", "now", "pg_size_pretty", "pg_relation_size", "pg_blocking_pids"} <= ALLOWED_FUNCTIONS


# --- on the real PostgreSQL ----------------------------------------------------------------


def run(sql_or_check: dict, dsn: str, timeout: float = 10):
    service = Service(slug="svc", name="Svc", database_url=dsn)
    action = ACTIONS["postgres_query"]
    return action.run(action.validate(sql_or_check), Target(service, Masker()), timeout)


SEED_DIAGNOSTICS = [
    "SELECT count(*) FROM pg_stat_activity",
    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'",
    "SELECT * FROM pg_stat_all_tables WHERE idx_scan = 0 AND seq_scan > 0",
    "SELECT * FROM pg_locks WHERE NOT granted",
    "SELECT datname, numbackends, xact_commit FROM pg_stat_database WHERE datname = current_database()",
    "SELECT version()",
    # Locks with who holds them, the way on-call engineers write it.
    "SELECT a.pid, a.state, pg_blocking_pids(a.pid) AS blocked_by, l.mode, l.granted "
    "FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid WHERE l.relation IS NOT NULL",
    # Table and index statistics with their sizes.
    "SELECT relname, seq_scan, idx_scan, n_live_tup, n_dead_tup, last_autovacuum, "
    "pg_size_pretty(pg_total_relation_size(relid)) AS size FROM pg_stat_user_tables ORDER BY n_dead_tup DESC",
    "SELECT indexrelname, idx_scan, pg_size_pretty(pg_relation_size(indexrelid)) AS size "
    "FROM pg_stat_user_indexes ORDER BY pg_relation_size(indexrelid) DESC LIMIT 10",
    # Long-running queries, written out.
    "SELECT pid, now() - query_start AS running_for, left(query, 80) AS query FROM pg_stat_activity "
    "WHERE state <> 'idle' AND query_start < now() - interval '1 second' ORDER BY running_for DESC",
]


@pytest.mark.parametrize("sql", SEED_DIAGNOSTICS)
def test_the_seed_runbooks_diagnostics_still_run(pg_dsn, sql):
    result = run({"sql": sql}, pg_dsn)
    assert result.status == "ok" and result.data["columns"]


@pytest.mark.parametrize(
    "check", ["connections_by_state", "long_running_queries", "slow_queries", "table_sizes", "unused_indexes"]
)
def test_the_built_in_diagnostics_still_run(pg_dsn, check):
    result = run({"check": check}, pg_dsn)
    assert result.status in {"ok", "warning", "critical"} and result.summary


def test_every_sql_step_the_seeds_import_passes_the_guard_in_the_worker(pg_dsn):
    for path in sorted(SEEDS.glob("*.md")):
        import_document(path.read_bytes(), name=path.name)
    steps = RunbookStep.objects.filter(action="postgres_query", params__has_key="sql")
    assert steps.exists()
    for step in steps:
        try:
            run(step.params, pg_dsn)
        except ActionError as exc:
            # The seeds query their own applications' tables, absent here: the server ran the query.
            assert "does not exist" in str(exc), (step.params, exc)


@contextlib.contextmanager
def step_role(pg_dsn: str, *settings: str):
    """A login role like the README's least-privilege one (pg_monitor, no superuser), dropped afterwards."""
    role = f"opsportal_steps_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
        admin.execute(f"GRANT pg_monitor TO {role}")
        for setting in settings:
            admin.execute(f"ALTER ROLE {role} SET {setting}")
        try:
            yield pg_dsn.replace("://postgres@", f"://{role}@")
        finally:
            admin.execute(f"DROP ROLE {role}")


def test_the_server_reads_literals_as_the_parser_did_whatever_the_database_says(pg_dsn):
    # With standard_conforming_strings off, `'\\' || '` is one string and the text after it code.
    sql = "SELECT '\\' || ' , 1 AS smuggled -- ' AS text"
    with step_role(pg_dsn, "standard_conforming_strings = off") as dsn:
        with psycopg.connect(dsn) as conn:
            assert [c.name for c in conn.execute(sql).description] == ["?column?", "smuggled"]
        result = run({"sql": sql}, dsn)
    assert result.data["columns"] == ["text"]
    assert result.data["rows"] == [["\\ , 1 AS smuggled -- "]]


def test_a_step_connected_as_a_superuser_says_so_and_a_pg_monitor_role_does_not(pg_dsn):
    as_superuser = run({"check": "connections_by_state"}, pg_dsn)
    assert "connected as postgres, a superuser" in as_superuser.output
    assert as_superuser.data["warnings"] == [postgres_action.superuser_warning("postgres")]

    with step_role(pg_dsn) as dsn:
        for check in ["connections_by_state", "long_running_queries", "table_sizes"]:
            result = run({"check": check}, dsn)
            assert "superuser" not in result.output and "warnings" not in result.data
        activity = run({"sql": "SELECT count(*) AS others FROM pg_stat_activity WHERE query <> ''"}, dsn)
    assert activity.data["rows"][0][0] >= 1  # pg_monitor sees other sessions' queries
