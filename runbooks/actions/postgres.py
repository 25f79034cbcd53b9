"""postgres_query: read-only diagnostics, built-in or the runbook's own SELECT.

Two independent guards keep it read-only:

1. Before anything connects (when the runbook is stored, and again in the worker),
   `check_read_only` parses the SQL with PostgreSQL's own grammar (pglast, the server's parser as a
   library) and accepts it only when it is read-only by construction: exactly one SELECT / WITH …
   SELECT / VALUES / TABLE, EXPLAIN of one (not EXPLAIN ANALYZE) or SHOW, built only of the syntax
   nodes in `ALLOWED_NODES`, calling only the side-effect-free functions in `ALLOWED_FUNCTIONS` and
   the built-in operators in `ALLOWED_OPERATORS`, with no row locks and no SELECT INTO. Anything
   else waits for a person: the server would allow pg_terminate_backend, pg_read_file,
   pg_reload_conf or an advisory lock inside a READ ONLY transaction, and a function like ts_stat
   runs SQL hidden in a string, which no parser can judge.
2. The server enforces it: the session starts with default_transaction_read_only=on and
   standard_conforming_strings=on (so the server reads string literals exactly as the parser did),
   the query runs in a READ ONLY transaction with a statement_timeout and lock_timeout, and the
   transaction is always rolled back. Connect as a least-privilege role (README: "A least-privilege
   role for steps"); a step connected as a superuser says so in its output.
"""

import contextlib
import datetime
import decimal
import re
import time

import pglast
import psycopg
from pglast import ast
from pglast.enums import A_Expr_Kind
from pglast.parser import ParseError, scan
from psycopg import errors as pg_errors

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

# Functions a read-only step may call: each computes from its arguments, the rows it reads, the
# clock or the server's statistics, and changes nothing. Names are matched unqualified or in
# pg_catalog; a function of any other schema (a user's own, which may write) is refused. Missing
# on purpose: anything that signals or controls the server (pg_terminate_backend, pg_cancel_backend,
# pg_reload_conf, pg_promote, checkpoints, replication slots), reads files or large objects
# (pg_read_file, pg_ls_dir, lo_get), takes advisory locks, changes settings (set_config) or
# sequences (nextval, setval), resets statistics, or evaluates text as SQL (ts_stat, query_to_xml,
# table_to_xml, cursor_to_xml, dblink, xpath over query output) — and anything not listed.
ALLOWED_FUNCTIONS = frozenset(
    {
        # Aggregates: fold the rows read into a figure.
        "count", "sum", "avg", "min", "max", "bool_and", "bool_or", "every", "array_agg", "string_agg",
        "json_agg", "jsonb_agg", "json_object_agg", "jsonb_object_agg", "stddev", "stddev_pop",
        "stddev_samp", "variance", "var_pop", "var_samp", "percentile_cont", "percentile_disc", "mode",
        "bit_and", "bit_or", "corr", "covar_pop", "covar_samp",
        # Window functions: rank and compare rows already read.
        "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead",
        "first_value", "last_value", "nth_value",
        # Date and time: the clock and arithmetic on it (AT TIME ZONE is timezone(), EXTRACT extract()).
        "now", "clock_timestamp", "statement_timestamp", "transaction_timestamp", "timeofday",
        "date_trunc", "date_part", "date_bin", "extract", "age", "timezone", "make_interval",
        "make_date", "make_time", "make_timestamp", "make_timestamptz", "to_timestamp", "to_char",
        "to_date", "to_number", "justify_days", "justify_hours", "justify_interval", "isfinite",
        # Numbers.
        "abs", "round", "ceil", "ceiling", "floor", "trunc", "mod", "div", "power", "sqrt", "cbrt",
        "exp", "ln", "log", "log10", "sign", "pi", "width_bucket",
        # Text (SQL-syntax forms included: TRIM is btrim(), SIMILAR TO similar_to_escape()).
        "length", "char_length", "character_length", "octet_length", "lower", "upper", "initcap",
        "left", "right", "substr", "substring", "position", "strpos", "btrim", "ltrim", "rtrim",
        "overlay", "replace", "translate", "reverse", "lpad", "rpad", "split_part", "concat",
        "concat_ws", "format", "starts_with", "regexp_replace", "regexp_match", "regexp_matches",
        "regexp_like", "regexp_count", "regexp_substr", "regexp_split_to_array",
        "regexp_split_to_table", "similar_to_escape", "quote_ident", "quote_literal", "quote_nullable",
        "md5", "encode", "decode", "to_hex", "normalize",
        # Arrays and sets of values.
        "unnest", "array_length", "array_lower", "array_upper", "cardinality", "array_position",
        "array_positions", "array_remove", "array_append", "array_prepend", "array_cat",
        "array_to_string", "string_to_array", "generate_series", "generate_subscripts",
        # JSON: build and take apart values.
        "to_json", "to_jsonb", "row_to_json", "array_to_json", "json_build_object", "jsonb_build_object",
        "json_build_array", "jsonb_build_array", "json_object", "jsonb_object", "jsonb_pretty",
        "json_typeof", "jsonb_typeof", "json_array_length", "jsonb_array_length", "json_each",
        "jsonb_each", "json_each_text", "jsonb_each_text", "json_object_keys", "jsonb_object_keys",
        "json_array_elements", "jsonb_array_elements", "json_array_elements_text",
        "jsonb_array_elements_text", "json_extract_path", "jsonb_extract_path",
        "json_extract_path_text", "jsonb_extract_path_text", "jsonb_strip_nulls", "jsonb_set",
        # Sizes of relations, indexes, databases and values, and their pretty printing.
        "pg_size_pretty", "pg_size_bytes", "pg_relation_size", "pg_total_relation_size",
        "pg_table_size", "pg_indexes_size", "pg_database_size", "pg_tablespace_size", "pg_column_size",
        # Catalog lookups: names, definitions, visibility and privileges of objects.
        "current_database", "current_schema", "current_schemas", "version", "format_type",
        "pg_typeof", "pg_get_userbyid", "pg_get_indexdef", "pg_get_viewdef", "pg_get_constraintdef",
        "pg_get_triggerdef", "pg_get_functiondef", "pg_get_expr", "pg_get_serial_sequence",
        "pg_describe_object", "pg_identify_object", "obj_description", "col_description",
        "shobj_description", "pg_table_is_visible", "to_regclass", "to_regtype", "to_regrole",
        "to_regnamespace", "pg_encoding_to_char", "has_table_privilege", "has_schema_privilege",
        "has_database_privilege", "has_column_privilege", "has_any_column_privilege", "pg_has_role",
        # Server state and statistics: the numbers behind pg_stat_* views, locks, WAL and replication
        # positions, settings as they are (current_setting only reads; set_config is not here).
        "current_setting", "pg_backend_pid", "pg_blocking_pids", "pg_safe_snapshot_blocking_pids",
        "pg_postmaster_start_time", "pg_conf_load_time", "pg_is_in_recovery", "pg_is_wal_replay_paused",
        "pg_current_wal_lsn", "pg_current_wal_insert_lsn", "pg_current_wal_flush_lsn",
        "pg_last_wal_receive_lsn", "pg_last_wal_replay_lsn", "pg_last_xact_replay_timestamp",
        "pg_wal_lsn_diff", "pg_lock_status", "pg_stat_statements", "pg_stat_statements_info",
        "inet_server_addr", "inet_server_port", "inet_client_addr", "inet_client_port", "mxid_age",
        "pg_stat_get_activity", "pg_stat_get_backend_pid", "pg_stat_get_db_numbackends",
        "pg_stat_get_numscans", "pg_stat_get_live_tuples", "pg_stat_get_dead_tuples",
        "pg_stat_get_last_autovacuum_time", "pg_stat_get_last_autoanalyze_time",
        # Waiting: pg_sleep holds nothing but the connection, and the statement timeout ends it.
        "pg_sleep",
    }
)  # fmt: skip

# Operators of the built-in types (comparison, arithmetic, text matching, arrays, JSON, ranges,
# full-text match). An operator written OPERATOR(schema.op) must be pg_catalog's.
ALLOWED_OPERATORS = frozenset(
    {
        "=", "<>", "!=", "<", ">", "<=", ">=", "+", "-", "*", "/", "%", "^", "|/", "||/", "@", "&", "|",
        "#", "~", "<<", ">>", "||", "~~", "~~*", "!~~", "!~~*", "~*", "!~", "!~*", "@>", "<@", "&&",
        "->", "->>", "#>", "#>>", "?", "?|", "?&", "@?", "@@", "#-", "<->",
    }
)  # fmt: skip

# The syntax a read-only query is built of. Everything else — INSERT/UPDATE/DELETE/MERGE in a CTE,
# SELECT INTO, XML and JSON table functions, TABLESAMPLE, parameters, any utility statement — is
# refused, so new grammar in a later PostgreSQL is refused until someone has looked at it.
ALLOWED_NODES = frozenset(
    {
        ast.SelectStmt, ast.ResTarget, ast.ColumnRef, ast.A_Star, ast.A_Const, ast.String, ast.Integer,
        ast.Float, ast.Boolean, ast.BitString, ast.A_Expr, ast.BoolExpr, ast.NullTest, ast.BooleanTest,
        ast.TypeCast, ast.TypeName, ast.FuncCall, ast.SQLValueFunction, ast.CoalesceExpr,
        ast.MinMaxExpr, ast.CaseExpr, ast.CaseWhen, ast.SubLink, ast.A_ArrayExpr, ast.A_Indirection,
        ast.A_Indices, ast.RowExpr, ast.CollateClause, ast.NamedArgExpr, ast.RangeVar,
        ast.RangeSubselect, ast.RangeFunction, ast.JoinExpr, ast.Alias, ast.SortBy, ast.WindowDef,
        ast.GroupingSet, ast.GroupingFunc, ast.WithClause, ast.CommonTableExpr, ast.ColumnDef,
    }
)  # fmt: skip

# How a refused statement or clause is named in the reason.
_NODE_WORDS = {
    ast.InsertStmt: "INSERT", ast.UpdateStmt: "UPDATE", ast.DeleteStmt: "DELETE", ast.MergeStmt: "MERGE",
    ast.ParamRef: "a $n parameter", ast.RangeTableSample: "TABLESAMPLE", ast.RangeTableFunc: "XMLTABLE",
    ast.XmlExpr: "an XML expression", ast.XmlSerialize: "XMLSERIALIZE",
}  # fmt: skip
_UNICODE_ESCAPES = {"UIDENT", "USCONST"}
_COMMENTS = {"SQL_COMMENT", "C_COMMENT"}
_SAFE_SCHEMA = "pg_catalog"


class UnsafeSQL(ParamsError):
    pass


def _refuse(reason: str) -> UnsafeSQL:
    return UnsafeSQL(f"Not a read-only query: {reason}")


def _without_comments(sql: str, tokens) -> str:
    """The statement as the server will run it, comments and the trailing semicolon removed.

    Cut at the positions PostgreSQL's own scanner reports, so what is judged is what runs."""
    kept, position = [], 0
    for token in tokens:
        if token.name in _COMMENTS:
            kept.append(sql[position : token.start] + " ")
            position = token.end + 1
    kept.append(sql[position:])
    lines = "".join(kept).strip().rstrip(";").strip().splitlines()
    return "\n".join(line.rstrip() for line in lines)


def _name(parts) -> tuple[str | None, str]:
    names = [p.sval for p in parts]
    return (names[0].lower() if len(names) > 1 else None), names[-1]


def _check_node(node) -> None:
    kind = type(node)
    if kind not in ALLOWED_NODES:
        word = _NODE_WORDS.get(kind, kind.__name__)
        raise _refuse(f"it contains {word}, which a read-only step may not use.")
    if kind is ast.SelectStmt:
        if node.intoClause is not None:
            raise _refuse("it contains INTO (SELECT INTO creates a table).")
        for clause in node.lockingClause or ():
            word = "UPDATE" if "UPDATE" in clause.strength.name else "SHARE"
            raise _refuse(f"it contains {word} (FOR {word} locks the rows it reads).")
    elif kind is ast.FuncCall:
        schema, name = _name(node.funcname)
        if (schema not in {None, _SAFE_SCHEMA}) or name.lower() not in ALLOWED_FUNCTIONS:
            shown = f"{schema}.{name}" if schema else name
            raise _refuse(f"it calls {shown}(), which is not on the list of side-effect-free functions.")
    elif kind is ast.A_Expr and node.kind not in {
        A_Expr_Kind.AEXPR_BETWEEN,
        A_Expr_Kind.AEXPR_NOT_BETWEEN,
        A_Expr_Kind.AEXPR_BETWEEN_SYM,
        A_Expr_Kind.AEXPR_NOT_BETWEEN_SYM,
    }:
        schema, operator = _name(node.name)
        if schema not in {None, _SAFE_SCHEMA} or operator not in ALLOWED_OPERATORS:
            raise _refuse(f"it uses the operator {operator}, which is not a built-in one.")
    elif kind is ast.TypeName:
        schema, name = _name(node.names)
        if schema not in {None, _SAFE_SCHEMA}:
            raise _refuse(f"it casts to {schema}.{name}, a type outside pg_catalog.")


def _walk(value) -> None:
    if isinstance(value, list | tuple):
        for item in value:
            _walk(item)
    elif isinstance(value, ast.Node):
        _check_node(value)
        for attribute in value:
            _walk(getattr(value, attribute))


def _check_statement(statement) -> None:
    if isinstance(statement, ast.VariableShowStmt):
        return
    if isinstance(statement, ast.ExplainStmt):
        options = {option.defname.lower() for option in statement.options or ()}
        if "analyze" in options:
            raise _refuse("it contains ANALYZE (EXPLAIN ANALYZE runs the query).")
        statement = statement.query
    if not isinstance(statement, ast.SelectStmt):
        raise _refuse(f"it contains {_NODE_WORDS.get(type(statement), type(statement).__name__)}.")
    _walk(statement)


def check_read_only(sql: str) -> str:
    """The single read-only statement in `sql`, without comments or a trailing semicolon; UnsafeSQL otherwise."""
    if not isinstance(sql, str) or not sql.strip():
        raise UnsafeSQL("No SQL statement found.")
    try:
        tokens = scan(sql)
    except ParseError as exc:
        raise UnsafeSQL(f"Not valid SQL: {exc}") from None
    if any(token.name in _UNICODE_ESCAPES for token in tokens):
        raise UnsafeSQL("Unicode-escaped names and strings (U&...) are not accepted in runbook queries.")
    words = [token for token in tokens if token.name not in _COMMENTS]
    if not words:
        raise UnsafeSQL("No SQL statement found.")
    clean = _without_comments(sql, tokens)
    try:
        statements = pglast.parse_sql(clean)
    except ParseError as exc:
        raise UnsafeSQL(f"Not valid SQL: {exc}") from None
    if len(statements) != 1:
        raise UnsafeSQL(f"Only one statement may run per step; found {len(statements)}.")
    first = sql[words[0].start : words[0].end + 1].upper()
    statement = statements[0].stmt
    if first not in {"SELECT", "WITH", "VALUES", "TABLE", "SHOW", "EXPLAIN", "("}:
        raise _refuse(f"it starts with {first}; only SELECT-style statements run.")
    _check_statement(statement)
    return clean


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
            # The server reads string literals as the parser did (a backslash never escapes a quote), whatever the
            # database's or the URL's own settings say.
            options=f"-c default_transaction_read_only=on -c standard_conforming_strings=on -c statement_timeout={ms}",
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


def superuser_warning(user: str) -> str:
    return (
        f"Warning: this read-only step connected as {user}, a superuser. Connect steps as a role with "
        "pg_monitor and no superuser (README: A least-privilege role for runbook steps)."
    )


def run(params: dict, target: Target, timeout: float) -> CheckResult:
    params = validate(params)
    conn = _connect(target.setting("database_url"), timeout)
    try:
        with conn.cursor() as cur:
            result = _RUNNERS.get(params.get("check"), _custom)(cur, params)
        if conn.info.parameter_status("is_superuser") == "on":
            result.output = f"{result.output}\n\n{superuser_warning(conn.info.user)}"
            result.data["warnings"] = [*result.data.get("warnings", []), superuser_warning(conn.info.user)]
        return result
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
