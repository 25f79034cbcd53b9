"""postgres_query: read-only diagnostics, built-in or the runbook's own SELECT.

Two independent guards keep it read-only:

1. Before anything runs (when the runbook is stored, and again in the worker), `check_read_only`
   parses the SQL with sqlparse and accepts exactly one statement that starts with SELECT, WITH,
   VALUES, TABLE, SHOW or EXPLAIN (without ANALYZE) and contains, outside string literals and
   comments, no data-changing or session-changing keyword (INSERT, UPDATE, DELETE, MERGE, DDL,
   COPY, VACUUM, ANALYZE, LOCK, SET, SELECT ... INTO, FOR UPDATE/SHARE, ...) and no call to a
   function with side effects that a read-only transaction still allows (pg_terminate_backend,
   pg_cancel_backend, pg_reload_conf, advisory locks, set_config, file and large-object access,
   dblink, statistics resets, ...).
2. The server enforces it: the session starts with default_transaction_read_only=on, the query
   runs in a READ ONLY transaction with a statement_timeout and lock_timeout, and the transaction
   is always rolled back.
"""

import contextlib
import datetime
import decimal
import re
import time

import psycopg
import sqlparse
from psycopg import errors as pg_errors
from sqlparse import tokens as T

from runbooks.actions.base import (
    Action,
    ActionError,
    CheckResult,
    ParamsError,
    StepTimeout,
    Target,
    TransientError,
    number,
    only,
    table,
    threshold_status,
)
from runbooks.choices import CheckStatus

ROW_LIMIT = 200
JSON_ROWS = 50

_FIRST_WORDS = {"SELECT", "WITH", "VALUES", "TABLE", "SHOW", "EXPLAIN"}
_FORBIDDEN_WORDS = {
    "INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT", "CREATE", "DROP", "ALTER", "TRUNCATE", "RENAME",
    "GRANT", "REVOKE", "COPY", "VACUUM", "ANALYZE", "ANALYSE", "REINDEX", "CLUSTER", "LOCK", "CALL", "DO",
    "SET", "RESET", "LISTEN", "NOTIFY", "UNLISTEN", "PREPARE", "EXECUTE", "DEALLOCATE", "DISCARD",
    "CHECKPOINT", "REFRESH", "COMMENT", "SECURITY", "IMPORT", "INTO", "SHARE", "BEGIN", "COMMIT",
    "ROLLBACK", "SAVEPOINT", "RELEASE", "LOAD",
}  # fmt: skip
_FORBIDDEN_FUNCTIONS = re.compile(
    r"^(pg_terminate_backend|pg_cancel_backend|pg_reload_conf|pg_rotate_logfile|pg_promote|pg_switch_wal"
    r"|pg_create_\w+|pg_drop_\w+|pg_start_backup|pg_stop_backup|pg_backup_\w+|set_config|pg_advisory\w*"
    r"|pg_try_advisory\w*|lo_\w+|pg_read_\w+|pg_ls_\w+|pg_stat_file|pg_file_\w+|dblink\w*|pg_notify"
    r"|pg_logical_\w+|pg_replication_\w+|pg_stat_reset\w*|pg_stat_statements_reset|pg_wal_replay_\w+"
    r"|pg_log_backend_memory_contexts|pg_import_system_collations|nextval|setval|query_to_xml\w*"
    r"|table_to_xml\w*|cursor_to_xml\w*)$",
    re.IGNORECASE,
)

# U&"..." could spell a forbidden function name in escapes the tokenizer does not decode.
_UNICODE_ESCAPE = re.compile(r"\bU&[\"']", re.IGNORECASE)


class UnsafeSQL(ParamsError):
    pass


def check_read_only(sql: str) -> str:
    """The single read-only statement in `sql`, without a trailing semicolon; UnsafeSQL otherwise."""
    if not isinstance(sql, str) or not sql.strip():
        raise UnsafeSQL("No SQL statement found.")
    if _UNICODE_ESCAPE.search(sql):
        raise UnsafeSQL("Unicode-escaped names and strings (U&...) are not accepted in runbook queries.")
    statements = [s for s in sqlparse.parse(sql) if s.token_first(skip_cm=True, skip_ws=True) is not None]
    if not statements:
        raise UnsafeSQL("No SQL statement found.")
    if len(statements) > 1:
        raise UnsafeSQL(f"Only one statement may run per step; found {len(statements)}.")
    statement = statements[0]
    first = statement.token_first(skip_cm=True, skip_ws=True).normalized.upper()
    if first not in _FIRST_WORDS:
        raise UnsafeSQL(f"Not a read-only query: it starts with {first}; only SELECT-style statements run.")
    for token in statement.flatten():
        if token.ttype in T.Comment or token.is_whitespace:
            continue
        # A double-quoted identifier is a name ("pg_terminate_backend"(1) still calls the function).
        is_name = token.ttype in T.Name or token.ttype in T.String.Symbol
        if token.ttype in T.String and not is_name:
            continue
        word = token.normalized.upper()
        if token.ttype in T.Keyword and word in _FORBIDDEN_WORDS:
            raise UnsafeSQL(f"Not a read-only query: it contains {word}.")
        if is_name and _FORBIDDEN_FUNCTIONS.match(token.value.strip('"')):
            raise UnsafeSQL(f"Not a read-only query: it calls {token.value.strip(chr(34))}(), which has side effects.")
    return sqlparse.format(str(statement), strip_comments=True).strip().rstrip(";").strip()


_CONNECTIONS = """
SELECT coalesce(state, 'unknown') AS state, count(*) AS connections
FROM pg_stat_activity WHERE backend_type = 'client backend'
GROUP BY 1 ORDER BY 2 DESC"""
_LONG_RUNNING = """
SELECT pid, usename AS user, state, extract(epoch FROM now() - query_start)::int AS seconds,
       left(regexp_replace(query, '\\s+', ' ', 'g'), 200) AS query
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND state <> 'idle' AND pid <> pg_backend_pid()
  AND query_start IS NOT NULL AND now() - query_start >= make_interval(secs => %(min_seconds)s)
ORDER BY seconds DESC LIMIT %(limit)s"""
_SLOW = """
SELECT round({mean}::numeric, 1) AS mean_ms, calls, round({total}::numeric, 1) AS total_ms,
       left(regexp_replace(query, '\\s+', ' ', 'g'), 200) AS query
FROM pg_stat_statements WHERE {mean} >= %(min_mean_ms)s
ORDER BY {mean} DESC LIMIT %(limit)s"""
_TABLE_SIZES = """
SELECT n.nspname AS schema, c.relname AS table, pg_total_relation_size(c.oid) AS bytes,
       pg_size_pretty(pg_total_relation_size(c.oid)) AS size, greatest(c.reltuples, 0)::bigint AS estimated_rows
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%%'
ORDER BY bytes DESC LIMIT %(limit)s"""
_UNUSED_INDEXES = """
SELECT s.schemaname AS schema, s.relname AS table, s.indexrelname AS index, s.idx_scan AS scans,
       pg_relation_size(s.indexrelid) AS bytes, pg_size_pretty(pg_relation_size(s.indexrelid)) AS size
FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary
ORDER BY bytes DESC LIMIT %(limit)s"""

CHECKS = {
    "select_1": {},
    "connections_by_state": {"warn_percent": 80, "critical_percent": 90},
    "long_running_queries": {"min_seconds": 0, "warn_seconds": 60, "critical_seconds": 300, "limit": 20},
    "slow_queries": {"min_mean_ms": 100, "critical_mean_ms": 1000, "limit": 20},
    "table_sizes": {"limit": 20},
    "unused_indexes": {"limit": 50},
}


def validate(params: dict) -> dict:
    check, sql = params.get("check"), params.get("sql")
    if bool(check) == bool(sql):
        raise ParamsError(f"give either check (one of {', '.join(CHECKS)}) or sql (one read-only statement).")
    if sql:
        only(params, {"sql", "limit"})
        clean = {"sql": check_read_only(sql)}
        clean["limit"] = int(number(params, "limit", ROW_LIMIT, minimum=1, maximum=ROW_LIMIT))
        return clean
    if check not in CHECKS:
        raise ParamsError(f"unknown check {check!r}; expected one of: {', '.join(CHECKS)}.")
    defaults = CHECKS[check]
    only(params, {"check", *defaults})
    clean = {"check": check}
    for key, default in defaults.items():
        value = number(params, key, default, minimum=0, maximum=ROW_LIMIT if key == "limit" else None)
        clean[key] = int(value) if key in {"limit", "min_seconds", "warn_seconds", "critical_seconds"} else value
    return clean


def describe(params: dict) -> str:
    return params.get("check") or "SQL: " + " ".join(params.get("sql", "").split())[:80]


def _json(value):
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _connect(dsn: str, timeout: float) -> psycopg.Connection:
    ms = max(int(timeout * 1000), 100)
    try:
        conn = psycopg.connect(
            dsn,
            connect_timeout=max(1, min(int(timeout), 10)),
            application_name="opsportal-runbook",
            options=f"-c default_transaction_read_only=on -c statement_timeout={ms}",
        )
    except psycopg.OperationalError as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if re.search(r"authentication failed|no pg_hba\.conf entry|does not exist|permission denied", message):
            raise ActionError(f"The database refused the connection: {message}") from None
        raise TransientError(f"Could not connect to the database: {message}") from None
    except psycopg.ProgrammingError as exc:
        raise ActionError(f"The database URL is not usable: {exc}") from None
    conn.read_only = True
    with conn.cursor() as cur:
        cur.execute("SELECT set_config('statement_timeout', %s, true)", [f"{ms}ms"])
        cur.execute("SELECT set_config('lock_timeout', %s, true)", [f"{min(ms, 5000)}ms"])
    return conn


def _fetch(cur, sql: str, args: dict | None = None, limit: int = ROW_LIMIT) -> tuple[list[str], list[list], bool]:
    cur.execute(sql, args)
    if cur.description is None:
        return [], [], False
    columns = [c.name for c in cur.description]
    rows = [list(r) for r in cur.fetchmany(limit + 1)]
    return columns, rows[:limit], len(rows) > limit


def _rows_result(status, summary, columns, rows, truncated=False, figures=None) -> CheckResult:
    return CheckResult(
        status=status,
        summary=summary,
        figures=figures or {},
        output=table(columns, rows) if columns else summary,
        data={
            "columns": columns,
            "rows": [[_json(v) for v in r] for r in rows[:JSON_ROWS]],
            "row_count": len(rows),
            "truncated": truncated or len(rows) > JSON_ROWS,
        },
    )


def _select_1(cur, p):
    started = time.perf_counter()
    columns, rows, _ = _fetch(cur, "SELECT 1 AS ok, current_setting('server_version') AS server_version")
    ms = round((time.perf_counter() - started) * 1000, 1)
    ok = rows and rows[0][0] == 1
    return _rows_result(
        CheckStatus.OK if ok else CheckStatus.CRITICAL,
        f"SELECT 1 answered in {ms:g} ms (PostgreSQL {rows[0][1]})" if ok else "SELECT 1 did not return 1",
        columns,
        rows,
        figures={"latency_ms": ms},
    )


def _connections(cur, p):
    columns, rows, _ = _fetch(cur, _CONNECTIONS)
    _, limit_rows, _ = _fetch(cur, "SELECT current_setting('max_connections')::int")
    total, maximum = sum(r[1] for r in rows), limit_rows[0][0]
    used = round(100 * total / maximum, 1) if maximum else 0
    status = threshold_status(used, p["warn_percent"], p["critical_percent"])
    by_state = ", ".join(f"{r[0]} {r[1]}" for r in rows)
    figures = {"connections": total, "max_connections": maximum, "used_percent": used}
    summary = f"{total} of {maximum} connections in use ({used:g} %): {by_state}"
    return _rows_result(status, summary, columns, rows, figures=figures)


def _long_running(cur, p):
    columns, rows, truncated = _fetch(cur, _LONG_RUNNING, {"min_seconds": p["min_seconds"], "limit": p["limit"]})
    longest = max((r[3] for r in rows), default=0)
    status = threshold_status(longest, p["warn_seconds"], p["critical_seconds"])
    summary = (
        f"{len(rows)} active quer{'y' if len(rows) == 1 else 'ies'}, longest {longest} s"
        if rows
        else "No active queries"
    )
    return _rows_result(status, summary, columns, rows, truncated, {"queries": len(rows), "longest_seconds": longest})


def _slow(cur, p):
    _, installed, _ = _fetch(cur, "SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")
    if not installed:
        return CheckResult(
            CheckStatus.WARNING,
            "pg_stat_statements is not installed in this database, so slow queries cannot be listed "
            "(add it to shared_preload_libraries and CREATE EXTENSION pg_stat_statements).",
            data={"available": False},
        )
    _, version, _ = _fetch(cur, "SELECT current_setting('server_version_num')::int")
    mean, total = ("mean_exec_time", "total_exec_time") if version[0][0] >= 130000 else ("mean_time", "total_time")
    cur.execute("SAVEPOINT slow_queries")
    try:
        columns, rows, truncated = _fetch(
            cur, _SLOW.format(mean=mean, total=total), {"min_mean_ms": p["min_mean_ms"], "limit": p["limit"]}
        )
    except pg_errors.ObjectNotInPrerequisiteState as exc:
        cur.execute("ROLLBACK TO SAVEPOINT slow_queries")
        return CheckResult(
            CheckStatus.WARNING,
            f"pg_stat_statements is installed but not loaded: {exc.diag.message_primary}",
            data={"available": False},
        )
    slowest = max((float(r[0]) for r in rows), default=0.0)
    status = threshold_status(slowest, p["min_mean_ms"] if rows else None, p["critical_mean_ms"])
    summary = (
        f"{len(rows)} quer{'y' if len(rows) == 1 else 'ies'} averaging over {p['min_mean_ms']:g} ms, "
        f"slowest {slowest:g} ms"
        if rows
        else f"No query averages over {p['min_mean_ms']:g} ms"
    )
    return _rows_result(status, summary, columns, rows, truncated, {"queries": len(rows), "slowest_mean_ms": slowest})


def _table_sizes(cur, p):
    columns, rows, truncated = _fetch(cur, _TABLE_SIZES, {"limit": p["limit"]})
    total = sum(r[2] for r in rows)
    summary = f"Largest: {rows[0][0]}.{rows[0][1]} ({rows[0][3]})" if rows else "No user tables"
    return _rows_result(CheckStatus.OK, summary, columns, rows, truncated, {"tables": len(rows), "total_bytes": total})


def _unused_indexes(cur, p):
    columns, rows, truncated = _fetch(cur, _UNUSED_INDEXES, {"limit": p["limit"]})
    wasted = sum(r[4] for r in rows)
    summary = (
        f"{len(rows)} index{'es' if len(rows) != 1 else ''} never scanned since statistics were reset "
        f"({wasted / 1048576:.1f} MB)"
        if rows
        else "Every non-unique index has been used"
    )
    status = CheckStatus.WARNING if rows else CheckStatus.OK
    return _rows_result(status, summary, columns, rows, truncated, {"indexes": len(rows), "bytes": wasted})


def _custom(cur, p):
    columns, rows, truncated = _fetch(cur, check_read_only(p["sql"]), limit=p.get("limit", ROW_LIMIT))
    summary = f"{len(rows)}{'+' if truncated else ''} row{'s' if len(rows) != 1 else ''}"
    if len(rows) == 1 and len(columns) == 1:
        summary += f": {columns[0]} = {_json(rows[0][0])}"
    return _rows_result(CheckStatus.OK, summary, columns, rows, truncated, {"rows": len(rows)})


_RUNNERS = {
    "select_1": _select_1,
    "connections_by_state": _connections,
    "long_running_queries": _long_running,
    "slow_queries": _slow,
    "table_sizes": _table_sizes,
    "unused_indexes": _unused_indexes,
}


def run(params: dict, target: Target, timeout: float) -> CheckResult:
    params = validate(params)
    conn = _connect(target.setting("database_url"), timeout)
    try:
        with conn.cursor() as cur:
            return _RUNNERS.get(params.get("check"), _custom)(cur, params)
    except pg_errors.QueryCanceled:
        raise StepTimeout(f"The query was cancelled by the {timeout:g} s statement timeout.") from None
    except pg_errors.LockNotAvailable:
        raise StepTimeout("The query waited too long for a lock and was cancelled.") from None
    except pg_errors.ReadOnlySqlTransaction as exc:
        raise ActionError(f"The database refused a write in this read-only step: {exc.diag.message_primary}") from None
    except psycopg.OperationalError as exc:
        raise TransientError(f"The database connection failed: {str(exc).strip()}") from None
    except psycopg.Error as exc:
        message = exc.diag.message_primary or str(exc)
        raise ActionError(f"The query failed ({exc.sqlstate or type(exc).__name__}): {message}") from None
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.rollback()
        conn.close()


ACTION = Action(
    name="postgres_query",
    label="PostgreSQL query",
    run=run,
    validate=validate,
    setting="database_url",
    describe=describe,
)
