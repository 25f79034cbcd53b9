"""PostgreSQL maintenance: ANALYZE, VACUUM ANALYZE, REINDEX, and terminating long-running queries.
The target's database URL, or the portal's own database when the run has no target.

terminate_long_queries first lists the client backends running one statement for longer than
`min_minutes` and then terminates exactly that list: a backend is terminated only if it is still
running the statement it was listed with (same pid and same query_start), so a query that
started since, or a reused pid, is never hit.
"""

import contextlib
import re
from datetime import datetime

import psycopg
from psycopg import sql

from runbooks.actions.base import (
    Action,
    ActionError,
    CheckResult,
    ParamsError,
    StepTimeout,
    Target,
    TransientError,
    flag,
    number,
    only,
    table,
)
from runbooks.choices import CheckStatus, Safety

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}(\.[A-Za-z_][A-Za-z0-9_$]{0,62})?$")
_LONG = """
SELECT pid, usename, state, query_start, extract(epoch FROM now() - query_start)::int AS seconds,
       left(regexp_replace(query, '\\s+', ' ', 'g'), 200) AS query
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND state = 'active' AND pid <> pg_backend_pid()
  AND query_start IS NOT NULL AND now() - query_start >= make_interval(secs => %(minutes)s * 60)
  AND datname = current_database()
ORDER BY query_start LIMIT %(limit)s"""
_TERMINATE = """
SELECT a.pid, pg_terminate_backend(a.pid) FROM pg_stat_activity a
JOIN unnest(%(pids)s::int[], %(starts)s::timestamptz[]) AS l(pid, started)
  ON l.pid = a.pid AND l.started = a.query_start"""


def _dsn(target: Target) -> str:
    if not target.is_portal:
        return target.setting("database_url")
    from django.db import connections

    db = connections["default"].settings_dict
    if db["ENGINE"] != "django.db.backends.postgresql":
        raise ActionError("The portal's database is SQLite; PostgreSQL maintenance needs a PostgreSQL target.")
    parts = {
        "host": db["HOST"],
        "port": db["PORT"],
        "dbname": db["NAME"],
        "user": db["USER"],
        "password": db["PASSWORD"],
    }
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in parts.items() if v})


def _connect(target: Target, timeout: float) -> psycopg.Connection:
    ms = max(int(timeout * 1000), 100)
    try:
        conn = psycopg.connect(
            _dsn(target),
            connect_timeout=max(1, min(int(timeout), 10)),
            application_name="opsportal-maintenance",
            options=f"-c statement_timeout={ms} -c lock_timeout={min(ms, 10_000)}",
            autocommit=True,  # VACUUM and REINDEX CONCURRENTLY cannot run inside a transaction
        )
    except psycopg.OperationalError as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TransientError(f"Could not connect to the database: {message}") from None
    return conn


def _validate_table(params: dict, *, required: bool = False, extra: set[str] = frozenset()) -> dict:
    only(params, {"table", "dry_run", *extra})
    clean = {"dry_run": flag(params, "dry_run")}
    name = params.get("table")
    if name is None:
        if required:
            raise ParamsError("table is required (schema.table or table).")
        return clean
    if not isinstance(name, str) or not _NAME.match(name):
        raise ParamsError("table must be a table name: table or schema.table.")
    clean["table"] = name
    return clean


def _ident(name: str) -> sql.Composable:
    return sql.Identifier(*name.split("."))


def _maintenance(verb: str):
    def run(params: dict, target: Target, timeout: float) -> CheckResult:
        name = params.get("table")
        if verb == "REINDEX":
            statement = sql.SQL("REINDEX TABLE CONCURRENTLY {}").format(_ident(name))
        else:
            statement = sql.SQL(verb + (" {}" if name else "")).format(*([_ident(name)] if name else []))
        conn = _connect(target, timeout)
        try:
            text = statement.as_string(conn)
            if params["dry_run"]:
                return CheckResult(CheckStatus.OK, f"Dry run: would run {text}", data={"dry_run": True, "sql": text})
            if name:
                with conn.cursor() as cur:
                    cur.execute("SELECT to_regclass(%s)", [name])
                    if cur.fetchone()[0] is None:
                        raise ActionError(f"No table {name!r} in this database.")
            conn.execute(statement)
        except psycopg.errors.QueryCanceled:
            raise StepTimeout(f"{verb} was cancelled by the {timeout:g} s statement timeout.") from None
        except psycopg.errors.LockNotAvailable:
            raise StepTimeout(f"{verb} waited too long for a lock and was cancelled.") from None
        except psycopg.OperationalError as exc:
            raise TransientError(f"The database connection failed: {str(exc).strip()}") from None
        except psycopg.Error as exc:
            raise ActionError(f"{verb} failed: {exc.diag.message_primary or exc}") from None
        finally:
            conn.close()
        summary = f"{text} done."
        return CheckResult(CheckStatus.OK, summary, {}, summary, {"sql": text})

    return run


def _validate_terminate(params: dict) -> dict:
    only(params, {"min_minutes", "limit", "dry_run", "only_queries"})
    clean = {
        "min_minutes": number(params, "min_minutes", 5, minimum=0.01, maximum=24 * 60),
        "limit": int(number(params, "limit", 50, minimum=1, maximum=500)),
        "dry_run": flag(params, "dry_run"),
    }
    if "only_queries" in params:
        clean["only_queries"] = _validate_pinned(params["only_queries"])
    return clean


def _validate_pinned(value) -> list[dict]:
    """The queries an approver saw (pid and start time, from the dry run): only these may be ended."""
    message = "only_queries must list up to 500 {pid, started} pairs from a dry run."
    if not isinstance(value, list) or not value or len(value) > 500:
        raise ParamsError(message)
    pinned = []
    for item in value:
        if not isinstance(item, dict) or set(item) != {"pid", "started"}:
            raise ParamsError(message)
        pid, started = item["pid"], item["started"]
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0 or not isinstance(started, str):
            raise ParamsError(message)
        try:
            datetime.fromisoformat(started)
        except ValueError:
            raise ParamsError(message) from None
        pinned.append({"pid": pid, "started": started})
    return pinned


def long_queries(conn: psycopg.Connection, minutes: float, limit: int) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(_LONG, {"minutes": minutes, "limit": limit})
        return cur.fetchall()


def _terminate(params: dict, target: Target, timeout: float) -> CheckResult:
    conn = _connect(target, timeout)
    try:
        listed = long_queries(conn, params["min_minutes"], params["limit"])
        if "only_queries" in params:
            pinned = {(q["pid"], datetime.fromisoformat(q["started"])) for q in params["only_queries"]}
            listed = [r for r in listed if (r[0], r[3]) in pinned]
        shown = table(["pid", "user", "state", "seconds", "query"], [[r[0], r[1], r[2], r[4], r[5]] for r in listed])
        queries = [
            {"pid": r[0], "started": r[3].isoformat(), "user": r[1], "seconds": r[4], "query": r[5]} for r in listed
        ]
        older = f"running for {params['min_minutes']:g} minutes or more"
        if params["dry_run"] or not listed:
            count = f"{len(listed)} quer{'y' if len(listed) == 1 else 'ies'} {older}"
            verb = "would terminate" if listed else "nothing to terminate"
            summary = f"{'Dry run: ' if params['dry_run'] else ''}{count}; {verb}"
            data = {"queries": queries, "terminated": []}
            return CheckResult(CheckStatus.OK, summary, {"listed": len(listed)}, shown, data)
        with conn.cursor() as cur:
            cur.execute(_TERMINATE, {"pids": [r[0] for r in listed], "starts": [r[3] for r in listed]})
            terminated = sorted(pid for pid, ok in cur.fetchall() if ok)
    except psycopg.OperationalError as exc:
        raise TransientError(f"The database connection failed: {str(exc).strip()}") from None
    except psycopg.Error as exc:
        raise ActionError(f"Terminating failed: {exc.diag.message_primary or exc}") from None
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.close()
    # Pinned to a dry run, the count is of the queries the approver saw.
    expected = len(params["only_queries"]) if "only_queries" in params else len(listed)
    gone = expected - len(terminated)
    summary = f"Terminated {len(terminated)} of {expected} quer{'y' if expected == 1 else 'ies'} {older}"
    if gone:
        summary += f" ({gone} had finished meanwhile)"
    return CheckResult(
        CheckStatus.OK, summary, {"listed": len(listed), "terminated": len(terminated)},
        f"{shown}\n{summary}", {"queries": queries, "terminated": terminated},
    )  # fmt: skip


def _describe(params: dict) -> str:
    what = params.get("table") or (f"older than {params['min_minutes']:g} min" if "min_minutes" in params else "")
    return (what + (" (dry run)" if params.get("dry_run") else "")).strip() or "whole database"


# A service's database URL, or the portal's own database.
DATABASE = {"setting": "database_url", "portal": True}
ACTIONS = [
    Action("analyze", "ANALYZE", _maintenance("ANALYZE"), _validate_table, _describe, Safety.CHANGE, **DATABASE),
    Action(
        "vacuum_analyze", "VACUUM ANALYZE", _maintenance("VACUUM (ANALYZE)"), _validate_table, _describe,
        Safety.CHANGE, **DATABASE,
    ),
    Action(
        "reindex", "REINDEX", _maintenance("REINDEX"), lambda p: _validate_table(p, required=True), _describe,
        Safety.DANGEROUS, **DATABASE,
    ),
    Action(
        "terminate_long_queries", "Terminate long queries", _terminate, _validate_terminate, _describe,
        Safety.DANGEROUS, **DATABASE,
    ),
]  # fmt: skip
