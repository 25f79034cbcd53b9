"""Recognising commands in code blocks: which become automated steps, which are dangerous.

A code block is cut into units (a command with the comment that names it). A unit is
*recognised* when it maps onto an action (`curl .../health` -> http_check, read-only SQL ->
postgres_query, ...). Independently, every command is classified: destructive ones (FLUSHALL,
DEL, pg_terminate_backend, DELETE/UPDATE/DROP/TRUNCATE/REINDEX/VACUUM FULL, kill, restarts, rm,
find -delete, ...) are `dangerous`; ones that change state are `change`; the rest `read_only`.
Regular expressions here only ever look at the text of one command, never at markdown structure.
"""

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote_plus, urlsplit

import pglast

from runbooks import parameters, placeholders
from runbooks.actions.postgres import UnsafeSQL, check_read_only
from runbooks.choices import Safety, strictest
from runbooks.importer.safety import (
    Verdict,
    exec_inner_words,
    judge,
    judge_command,
    judge_sql,
    register,
)
from runbooks.importer.safety import (
    strip_wrappers as judge_words_stripped,
)
from runbooks.importer.shell import parse

SHELL_LANGS = {"bash", "sh", "shell", "console", "zsh", "shell-session", "terminal", "shellsession"}
SQL_LANGS = {"sql", "postgresql", "postgres", "psql", "pgsql", "plpgsql"}
PROMQL_LANGS = {"promql", "prometheus"}
EXECUTABLES = {
    "curl", "wget", "psql", "pg_dump", "pg_restore", "redis-cli", "df", "free", "kill", "pkill", "killall", "rm",
    "find", "systemctl", "service", "docker", "docker-compose", "kubectl", "pm2", "npm", "npx", "yarn", "node",
    "git", "grep", "tail", "head", "cat", "less", "jq", "journalctl", "sudo", "ps", "top", "htop", "ping",
    "traceroute", "celery", "python", "python3", "ls", "du", "uptime", "vmstat", "iostat", "netstat", "ss",
    "dig", "nslookup", "mysql", "mongo", "tar", "gzip", "helm", "aws", "gcloud", "az", "echo", "export",
}  # fmt: skip
REDIS_COMMANDS = {
    "PING", "INFO", "DBSIZE", "TTL", "PTTL", "KEYS", "SCAN", "GET", "MGET", "HGETALL", "TYPE", "EXISTS",
    "MONITOR", "FLUSHALL", "FLUSHDB", "DEL", "UNLINK", "SET", "EXPIRE", "CONFIG", "CLIENT", "SLOWLOG",
    "MEMORY", "LLEN", "HGET", "SMEMBERS", "ZRANGE", "LRANGE", "STRLEN", "SHUTDOWN", "DEBUG", "SAVE", "BGSAVE",
}  # fmt: skip
_REDIS_DANGEROUS = {
    "FLUSHALL", "FLUSHDB", "DEL", "UNLINK", "SHUTDOWN", "DEBUG", "REPLICAOF", "SLAVEOF", "FAILOVER", "MIGRATE",
    "SWAPDB", "RENAME", "RESTORE",
}  # fmt: skip
_REDIS_CHANGE = {
    "SET", "SETEX", "SETNX", "MSET", "EXPIRE", "PEXPIRE", "PERSIST", "HSET", "HDEL", "LPUSH", "RPUSH", "LPOP",
    "RPOP", "INCR", "DECR", "SADD", "SREM", "ZADD", "ZREM", "PUBLISH", "CONFIG", "CLIENT", "SAVE", "BGSAVE",
    "BGREWRITEAOF", "SCRIPT", "FUNCTION",
}  # fmt: skip
_REDIS_READ = {
    "PING", "INFO", "DBSIZE", "TTL", "PTTL", "KEYS", "SCAN", "SSCAN", "HSCAN", "ZSCAN", "GET", "MGET", "HGET",
    "HGETALL", "HMGET", "HKEYS", "HLEN", "TYPE", "EXISTS", "STRLEN", "LLEN", "LRANGE", "LINDEX", "SCARD",
    "SMEMBERS", "SISMEMBER", "ZCARD", "ZRANGE", "ZSCORE", "ZCOUNT", "XLEN", "XINFO", "XRANGE", "XPENDING",
    "MONITOR", "SLOWLOG GET", "SLOWLOG LEN", "CONFIG GET", "CLIENT LIST", "CLIENT INFO", "MEMORY USAGE",
    "MEMORY STATS", "MEMORY DOCTOR", "LATENCY LATEST", "LATENCY DOCTOR", "LATENCY HISTORY", "CLUSTER INFO",
    "CLUSTER NODES", "ROLE", "LASTSAVE", "TIME", "OBJECT", "PUBSUB", "COMMAND", "RANDOMKEY", "DUMP", "ECHO",
}  # fmt: skip
_DANGEROUS_SUBCOMMANDS = {"CONFIG": {"SET", "REWRITE", "RESETSTAT"}, "CLIENT": {"KILL"}, "SCRIPT": {"FLUSH"}}

_DANGEROUS_COMMAND = [
    (re.compile(r"\b(FLUSHALL|FLUSHDB)\b", re.I), "deletes every key"),
    (re.compile(r"redis-cli\b.*\b(DEL|UNLINK)\b"), "deletes keys"),
    (re.compile(r"\bpg_(terminate|cancel)_backend\b", re.I), "ends other database sessions"),
    (
        re.compile(r"\bDELETE\s+FROM\b|\bUPDATE\s+\S+\s+SET\b|\bTRUNCATE\b|\bREINDEX\b|\bVACUUM\s+FULL\b", re.I),
        "changes or locks data",
    ),
    (
        re.compile(r"\bDROP\s+(TABLE|INDEX|DATABASE|SCHEMA|VIEW|USER|ROLE|EXTENSION|MATERIALIZED)\b", re.I),
        "drops objects",
    ),
    (re.compile(r"(^|[\s;|&(`$])(sudo\s+)?(kill|pkill|killall)\b"), "kills processes"),
    (re.compile(r"(^|[\s;|&])(sudo\s+)?rm\s"), "deletes files"),
    (re.compile(r"\bfind\b.*(\s-delete\b|-exec\s+rm\b)"), "deletes files"),
    (re.compile(r"\b(restart|reboot|shutdown|reload)\b", re.I), "restarts a service"),
    (re.compile(r"\b(systemctl|service)\b.*\bstop\b|\bpm2\s+(stop|delete|kill)\b"), "stops a service"),
    (re.compile(r"\bdocker(-compose|\s+compose)?\b.*\s(down|rm|kill|stop)\b"), "stops containers"),
    (re.compile(r"\bkubectl\b.*\b(delete|drain)\b"), "removes cluster resources"),
    # `psql $DATABASE_URL < backup.sql` restores a dump; `psql <DATABASE_URL>` is only a placeholder.
    (re.compile(r"\bpsql\b[^|]*\s<(?![A-Za-z_]+>)\s*\S+"), "replays a SQL file into the database"),
    (re.compile(r"(-X|--request)\s*DELETE\b|^DELETE\s+/", re.I), "sends an HTTP DELETE"),
    (re.compile(r"\bmkfs\b|\bdd\s+if="), "overwrites a disk"),
]
_CHANGE_COMMAND = re.compile(
    r"(-X|--request)\s*(POST|PUT|PATCH)\b|\bcurl\b.*\s(-d|--data\S*)\s|^(POST|PUT|PATCH)\s+/|\bpg_dump\b|\bpg_restore\b"
    r"|\b(npm|yarn|pnpm)\s+(install|ci|run\s+\S+)|\bnpx\b|\bgit\s+(pull|checkout|reset|merge|push)\b"
    r"|\bdocker(-compose|\s+compose)?\b.*\s(up|pull|build|exec|restart)\b|\bkubectl\s+(apply|scale|rollout|patch|edit)\b"
    r"|\b(migrate|deploy|scale)\b|\bVACUUM\b|\bANALY[SZ]E\b|\bpm2\s+start\b",
    re.I,
)
_DANGEROUS_CODE = re.compile(
    r"\.(delete|remove|destroy|drop|truncate|flushall|flushdb|obliterate|update)\s*\(|\bDELETE\s+FROM\b|\bDROP\s+TABLE\b",
    re.I,
)
_CHANGE_CODE = re.compile(
    r"\.(save|create|set|retry|pause\w*|resume\w*|clean\w*|add|bulk_create|register\w*|enqueue|publish)\s*\(",
    re.I,
)
_DANGEROUS_PROSE = re.compile(
    r"\b(restart\w*|reboot\w*|kill\w*|delet\w*|drop|dropping|truncat\w*|flush\w*|wipe|purg\w*|terminat\w*)\b", re.I
)
_CHANGE_PROSE = re.compile(
    r"\b(roll(ing)?[ -]?back|rollback|redeploy\w*|deploy\w*|scal(e|ing)|increase|decrease|reduce|tighten|adjust"
    r"|enable|disable|pause|resume|requeue|retry|restor\w*|rotat\w*|updat\w*|upgrad\w*|apply|patch|hotfix"
    r"|invalidat\w*|clear\w*|remov\w*|add|migrat\w*|tune|halt|stop|vacuum|analy[sz]e|clean\w*|warm|quarantine"
    r"|mark|fix|correct\w*|bump|re-?run|re-?enable)\b",
    re.I,
)
# `$API_URL/health` or `<BASE_URL>/health`: the host is the target's base URL.
_PLACEHOLDER_URL = re.compile(r"^(\$\{?\w+\}?|<[\w-]+>)(/\S*)$")
_HEALTH_PATH = re.compile(r"/(health|healthz|ready|readyz|livez|live)/?$", re.I)
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "0.0.0.0", "::1", "host"}  # noqa: S104 - matched, not bound


@dataclass
class Recognised:
    action: str = ""
    params: dict = field(default_factory=dict)
    safety: str = Safety.READ_ONLY
    reason: str = ""
    unknown: list[str] = field(default_factory=list)  # commands no rule recognised (a change by default)


@dataclass
class Unit:
    command: str
    title: str = ""
    notes: list[str] = field(default_factory=list)
    expected: str = ""
    numbered: bool = False
    recognised: Recognised = field(default_factory=Recognised)


def language(info: str, content: str) -> str:
    """shell, sql, promql, code (another language) or text (output, prose)."""
    lang = (info or "").strip().split(" ")[0].lower()
    if lang in SHELL_LANGS:
        return "shell"
    if lang in SQL_LANGS:
        return "sql"
    if lang in PROMQL_LANGS:
        return "promql"
    if lang:
        return "code"
    first = next((ln.strip() for ln in content.splitlines() if ln.strip() and not ln.strip().startswith("#")), "")
    word = first.split(" ")[0]
    if word in EXECUTABLES or word.startswith("./"):
        return "shell"
    if re.match(r"(?i)(select|with|explain|show)\s", first):
        return "sql"
    return "text"


def looks_like_command(text: str) -> bool:
    text = text.strip()
    word = text.split(" ")[0] if text else ""
    return (word in EXECUTABLES and " " in text) or bool(re.match(r"^(GET|POST|PUT|PATCH|DELETE)\s+/", text))


# --- classification ------------------------------------------------------------------------


def classify_command(command: str) -> tuple[str, str]:
    """HTTP request lines (`POST /api/...`) and code in other languages: by pattern, for want of a grammar."""
    for pattern, reason in _DANGEROUS_COMMAND:
        if pattern.search(command):
            return Safety.DANGEROUS, reason
    if _CHANGE_COMMAND.search(command):
        return Safety.CHANGE, "changes state"
    return Safety.READ_ONLY, ""


def classify_prose(text: str) -> str:
    if _DANGEROUS_PROSE.search(text):
        return Safety.DANGEROUS
    if _CHANGE_PROSE.search(text):
        return Safety.CHANGE
    return Safety.READ_ONLY


def classify_code(code: str) -> str:
    if _DANGEROUS_CODE.search(code) or classify_command(code)[0] == Safety.DANGEROUS:
        return Safety.DANGEROUS
    if _CHANGE_CODE.search(code):
        return Safety.CHANGE
    return Safety.READ_ONLY


def classify_sql(sql: str) -> str:
    return judge_sql(sql).safety


# --- recognition ---------------------------------------------------------------------------


def postgres_params(sql: str) -> dict:
    """A vetted built-in check when the SQL is one of the well-known diagnostics, else the SQL itself."""
    flat = " ".join(sql.lower().split()).rstrip(";")
    limit = re.search(r"\blimit (\d+)$", flat)
    limited = {"limit": min(int(limit[1]), 200)} if limit else {}
    if flat == "select 1":
        return {"check": "select_1"}
    if "pg_stat_statements" in flat:
        mean = re.search(r"mean_(?:exec_)?time\s*>=?\s*(\d+)", flat)
        return {"check": "slow_queries", **({"min_mean_ms": int(mean[1])} if mean else {}), **limited}
    if "pg_stat_activity" in flat and re.search(r"group by state\b", flat):
        return {"check": "connections_by_state"}
    if "pg_stat_activity" in flat and "query_start" in flat and "order by" in flat:
        return {"check": "long_running_queries", **limited}
    if "pg_total_relation_size" in flat:
        return {"check": "table_sizes", **limited}
    if "pg_stat_user_indexes" in flat and "idx_scan" in flat:
        return {"check": "unused_indexes", **limited}
    return {"sql": check_read_only(sql)}


def recognise_sql(sql: str) -> Recognised:
    verdict = judge_sql(sql)
    unknown = [] if verdict.known else [sql.strip()]
    if verdict.safety != Safety.READ_ONLY or placeholders.has_example_list(sql):
        # An example list (`'[0.1, 0.2, ...]'`) is no value a run could fill: it stays with a person.
        return Recognised(safety=verdict.safety, reason=verdict.reason, unknown=unknown)
    try:
        if placeholders.find(sql):
            # A blank to fill when the run starts: stored as written, the statement judged with a sample
            # value now and with the real one (a quoted literal) before it runs.
            blanks = {w: parameters.SAMPLE["sql"] for w, _ in placeholders.tokens(sql)}
            check_read_only(parameters.fill_sql(sql, blanks))
            return Recognised(action="postgres_query", params={"sql": sql.strip().rstrip(";").strip()})
        params = postgres_params(sql)
    except UnsafeSQL as exc:
        return Recognised(safety=strictest(verdict.safety, Safety.CHANGE), reason=str(exc), unknown=[sql.strip()])
    return Recognised(action="postgres_query", params=params)


def _sql_arguments(args: list[str]) -> list[str]:
    sql = []
    for n, arg in enumerate(args):
        if arg in {"-c", "--command"} and n + 1 < len(args):
            sql.append(args[n + 1])
        elif arg.startswith("--command="):
            sql.append(arg.split("=", 1)[1])
    return sql


def _judge_psql(args: list[str]) -> Verdict:
    if any(a in {"-f", "--file"} or a.startswith("--file=") for a in args):
        return Verdict(Safety.CHANGE, "psql runs a SQL file the portal cannot see", known=False)
    verdict = Verdict(Safety.READ_ONLY)
    for sql in _sql_arguments(args):
        verdict = verdict | judge_sql(sql)
    return verdict


def _redis_words(args: list[str]) -> tuple[dict, list[str], list[str]]:
    """(connection params, the Redis command words, the redis-cli options)."""
    params, options, n = {}, [], 0
    while n < len(args):
        arg = args[n]
        if arg in {"-h", "-p", "-a", "-u", "--user", "--pass", "--pattern", "-i", "--count"}:
            options.append(arg)
            n += 2
            continue
        if arg == "-n" and n + 1 < len(args) and args[n + 1].isdigit():
            params["db"] = int(args[n + 1])
            n += 2
            continue
        if arg.startswith("-"):
            options.append(arg)
            n += 1
            continue
        return params, args[n:], options
    return params, [], options


def _judge_redis(args: list[str]) -> Verdict:
    _, words, options = _redis_words(args)
    if not words:
        if set(options) & {"--scan", "--bigkeys", "--memkeys", "--hotkeys", "--stat", "--latency", "--latency-history"}:
            return Verdict(Safety.READ_ONLY)
        if set(options) & {"--rdb", "--pipe", "--functions-rdb"}:
            return Verdict(Safety.CHANGE, "redis-cli bulk transfer")
        return Verdict(Safety.READ_ONLY)  # an interactive session; what is typed in it is judged on its own
    command = words[0].upper()
    sub = words[1].upper() if len(words) > 1 else ""
    if command in _REDIS_DANGEROUS or sub in _DANGEROUS_SUBCOMMANDS.get(command, set()):
        return Verdict(Safety.DANGEROUS, f"Redis {command} changes or deletes data")
    if command in _REDIS_READ or f"{command} {sub}" in _REDIS_READ:
        return Verdict(Safety.READ_ONLY)
    if command in _REDIS_CHANGE:
        return Verdict(Safety.CHANGE, f"Redis {command} writes")
    return Verdict(Safety.CHANGE, f"not recognised as a read: Redis {command}", known=False)


register("psql", _judge_psql)
register("redis-cli", _judge_redis)


def _prometheus(url: str, args: list[str]) -> Recognised | None:
    parts = urlsplit(url)
    if not re.search(r"/api/v1/query(_range)?$", parts.path):
        return None
    query = parse_qs(parts.query).get("query", [""])[0]
    for n, arg in enumerate(args[:-1]):
        if arg in {"--data-urlencode", "-d", "--data", "-G"} and args[n + 1].startswith("query="):
            query = unquote_plus(args[n + 1].split("=", 1)[1]) if arg != "--data-urlencode" else args[n + 1][6:]
    return Recognised("prometheus_query", {"query": query}) if query.strip() else None


def _curl(args: list[str]) -> Recognised | None:
    method, url = "GET", None
    for n, arg in enumerate(args[1:], start=1):
        if arg in {"-X", "--request"} and n + 1 < len(args):
            method = args[n + 1].upper()
        elif arg in {"-I", "--head"}:
            method = "HEAD"
        elif url is None and ("://" in arg or _PLACEHOLDER_URL.match(arg)):
            url = arg
    if url is None or method not in {"GET", "HEAD"}:
        return None
    prometheus = _prometheus(url, args)
    if prometheus is not None:
        return prometheus
    placeholder = _PLACEHOLDER_URL.match(url)
    if placeholder:
        return (
            Recognised("http_check", {"path": placeholder[2], "method": method})
            if _HEALTH_PATH.search(placeholder[2])
            else None
        )
    parts = urlsplit(url)
    if not _HEALTH_PATH.search(parts.path):
        return None
    host = parts.hostname or ""
    if host in _LOCAL_HOSTS or "$" in url or "<" in url:
        # The author's own machine or a placeholder: the path runs against the target's base URL.
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return Recognised("http_check", {"path": path, "method": method})
    return Recognised("http_check", {"url": f"{parts.scheme}://{parts.netloc}{parts.path}", "method": method})


def _psql(args: list[str]) -> Recognised | None:
    sql = _sql_arguments(args)
    return recognise_sql(sql[0]) if len(sql) == 1 else None


def _redis(args: list[str]) -> Recognised | None:
    params, words, _ = _redis_words(args[1:])
    if not words:
        return None
    command = words[0].upper()
    sub = words[1].upper() if len(words) > 1 else ""
    if command == "PING":
        return Recognised("redis_check", {"check": "ping", **params})
    if command == "INFO":
        check = {"memory": "info_memory", "stats": "hit_rate"}.get(sub.lower(), "info")
        return Recognised("redis_check", {"check": check, **params})
    if command == "DBSIZE":
        return Recognised("redis_check", {"check": "dbsize", **params})
    if command in {"TTL", "PTTL"} and len(words) > 1:
        return Recognised("redis_check", {"check": "ttl", "key": words[1], **params})
    if command == "KEYS" and len(words) > 1:
        # KEYS blocks the server on a big keyspace; the check counts with SCAN instead.
        return Recognised("redis_check", {"check": "count_keys", "pattern": words[1], **params})
    return None


def _action(commands: list) -> Recognised | None:
    first = judge_words_stripped(commands[0].words)
    if not first:
        return None
    program = first[0].rsplit("/", 1)[-1]
    if program == "kubectl" and "exec" in first and "--" in first:
        # `kubectl exec ... -- psql -c ...`: the same check, run against the service's own database or cache.
        first = exec_inner_words(first)
        program = first[0].rsplit("/", 1)[-1] if first else ""
    if program == "curl":
        return _curl(first)
    if program == "psql":
        return _psql(first)
    if program == "redis-cli":
        return _redis(first)
    if program == "df" and len(commands) == 1:
        paths = [a for a in first[1:] if a.startswith("/")]
        return Recognised("host_check", {"check": "disk", **({"paths": paths} if paths else {})})
    if program == "free" and len(commands) == 1:
        return Recognised("host_check", {"check": "memory"})
    return None


def _strip_prompt(command: str) -> str:
    return re.sub(r"^\$\s+", "", command.strip())


def recognise_shell(command: str) -> Recognised:
    """Maps one shell statement (pipelines and `&&` lists included) to an action and a safety class."""
    text = _strip_prompt(command)
    statements = [s for s in parse(text) if s.commands]
    commands = [c for s in statements for c in s.commands]
    verdict = judge(commands, statements)
    base = Recognised(safety=verdict.safety, reason=verdict.reason, unknown=[] if verdict.known else [text])
    if verdict.safety != Safety.READ_ONLY or len(statements) != 1 or statements[0].control:
        return base
    return _action(commands) or base


def recognise_inline(text: str) -> Recognised:
    """An inline `code` span used as a command in a list item."""
    if re.match(r"^(GET|HEAD)\s+/", text):
        return Recognised()
    if re.match(r"^(POST|PUT|PATCH|DELETE)\s+/", text):
        safety, reason = classify_command(text)
        return Recognised(safety=safety, reason=reason)
    return recognise_shell(text)


# --- splitting blocks into units -----------------------------------------------------------

_NUMBERED = re.compile(r"^\d+[.)]\s+")
_EXPECTED = re.compile(r"^expected\s*(?:output|result)?\s*:\s*(.+)$", re.I)


def _comment_text(line: str, marker: str) -> str:
    return line.strip()[len(marker) :].strip()


def _title(comments: list[str]) -> tuple[str, list[str], bool]:
    comments = [c for c in comments if not _decoration(c)]
    if not comments:
        return "", [], False
    first = comments[0]
    numbered = bool(_NUMBERED.match(first))
    return _NUMBERED.sub("", first), comments[1:], numbered


def _decoration(comment: str) -> bool:
    """`# ======` banners and empty comments name nothing."""
    return not re.search(r"\w", comment)


def _new_group(groups: list[dict], prelude: list[str]) -> dict:
    group = {"comments": [], "commands": [], "expected": "", "prelude": list(prelude)}
    prelude.clear()
    groups.append(group)
    return group


def _console(content: str) -> tuple[str, list[str]]:
    """A terminal transcript (`$ command` then its output): the commands, and the output as notes."""
    lines = content.splitlines()
    if not any(ln.startswith("$ ") for ln in lines):
        return content, []
    commands, output = [], []
    for line in lines:
        if line.startswith("$ "):
            commands.append(line[2:])
        elif line.strip().startswith("#") or not line.strip():
            commands.append(line)
        else:
            output.append(line)
    return "\n".join(commands), output


def script_unit(content: str, statements: list) -> Unit:
    """A script (a shebang, or control flow such as an `if read -p ...` confirmation) stays one step:
    it runs as a whole, so it is judged by its most dangerous command."""
    commands = [c for s in statements for c in s.commands]
    verdict = judge(commands, statements)
    comments = [_comment_text(s.comment, "#") for s in statements if s.comment and not s.comment.startswith("#!")]
    title, _, numbered = _title(comments[:1])
    unknown = [] if verdict.known else [" ".join(c.words) for c in commands if not judge_command(c).known]
    return Unit(
        command=content.rstrip(),
        title=title,
        numbered=numbered,
        recognised=Recognised(safety=verdict.safety, reason=verdict.reason, unknown=unknown),
    )


def shell_units(content: str) -> list[Unit]:
    text, output = _console(content)
    statements = parse(text)
    if text.lstrip().startswith("#!") or any(s.control for s in statements):
        units = [script_unit(text, statements)]
    else:
        units = _group_units(_groups(statements))
    if output and units:
        units[-1].notes.append("Output:\n\n" + "\n".join(f"    {ln}" for ln in output))
    return units


def _groups(statements: list) -> list[dict]:
    groups: list[dict] = []
    current: dict | None = None
    interactive_redis = False
    prelude: list[str] = []
    for statement in statements:
        stripped = statement.text.strip()
        if statement.blank_before:
            current = None
        if statement.comment:
            text = _comment_text(stripped, "#")
            if _decoration(text):
                continue
            if current and current["commands"]:
                expected = _EXPECTED.match(text)
                if expected:
                    current["expected"] = expected[1].strip()
                    continue
                if re.match(r"(?i)^(example|e\.g\.)\b", text):
                    current["comments"].append(text)
                    continue
                current = None
            if current is None:
                current = _new_group(groups, prelude)
            current["comments"].append(text)
            continue
        words = statement.commands[0].words if len(statement.commands) == 1 else []
        if words[:1] == ["redis-cli"] and all(w.startswith("-") or w.isdigit() for w in words[1:]) and len(words) < 6:
            # An interactive session: the Redis commands that follow run in it.
            interactive_redis = True
            if current is not None and not current["commands"]:
                groups.remove(current)
                prelude += current["comments"]
            prelude.append(f"In an interactive session: `{stripped}`")
            current = None
            continue
        if interactive_redis and words and words[0].upper() in REDIS_COMMANDS:
            stripped = f"redis-cli {stripped}"
        if current is None:
            current = _new_group(groups, prelude)
        current["commands"].append(stripped)
    return groups


def _group_units(groups: list[dict]) -> list[Unit]:
    units: list[Unit] = []
    for group in groups:
        title, notes, numbered = _title(group["comments"])
        notes = group["prelude"] + notes
        commands = group["commands"]
        if not commands:
            if units and not numbered:
                units[-1].notes.extend(group["prelude"] + group["comments"])
            else:
                units.append(Unit(command="", title=title, notes=notes, numbered=numbered))
            continue
        recognised = [recognise_shell(c) for c in commands]
        if len(commands) > 1 and any(r.action or r.safety == Safety.DANGEROUS for r in recognised):
            # Each automatable or dangerous command gets its own step, so it runs or is approved alone.
            for command, rec in zip(commands, recognised, strict=True):
                first_line = " ".join(command.split())
                short = first_line if len(first_line) <= 60 else first_line[:57] + "..."
                unit_title = f"{title}: {short}" if title else short
                units.append(Unit(command=command, title=unit_title, notes=list(notes), recognised=rec))
            units[-1].expected = group["expected"]
            continue
        if len(commands) == 1:
            rec = recognised[0]
        else:
            worst = strictest(*(r.safety for r in recognised))
            rec = Recognised(
                safety=worst,
                reason=next((r.reason for r in recognised if r.safety == worst), ""),
                unknown=[u for r in recognised for u in r.unknown],
            )
        units.append(
            Unit(
                command="\n".join(commands),
                title=title,
                notes=notes,
                expected=group["expected"],
                numbered=numbered,
                recognised=rec,
            )
        )
    return units


def split_sql(content: str) -> list[str]:
    """Statements as PostgreSQL's own scanner cuts them (strings, dollar quotes and comments
    understood as the server reads them), each with the comments before it and its `;`. Text the
    scanner cannot read stays one chunk, which the read-only guard then refuses."""
    try:
        slices = pglast.split(content, with_parser=False, only_slices=True)
    except pglast.Error:
        return [content.strip()] if content.strip() else []
    chunks, start = [], 0
    for piece in slices:
        end = piece.stop + 1 if content[piece.stop : piece.stop + 1] == ";" else piece.stop
        line_end = content.find("\n", end)
        line_end = len(content) if line_end < 0 else line_end
        if content[end:line_end].strip().startswith("--"):  # `SELECT …;  -- why` keeps its comment
            end = line_end
        chunks.append(content[max(start, piece.start) : end].strip())
        start = end
    return [c for c in chunks if c]


def sql_units(content: str) -> list[Unit]:
    units: list[Unit] = []
    for chunk in split_sql(content):
        paragraphs = re.split(r"\n\s*\n", chunk.strip())
        body_lines = [ln for ln in paragraphs[-1].splitlines() if not ln.strip().startswith("--")]
        comment_lines = [_comment_text(ln, "--") for ln in paragraphs[-1].splitlines() if ln.strip().startswith("--")]
        earlier = [
            _comment_text(ln, "--") for p in paragraphs[:-1] for ln in p.splitlines() if ln.strip().startswith("--")
        ]
        sql = "\n".join(body_lines).strip()
        if earlier and units:
            units[-1].notes.extend(earlier)
        if not sql:
            if units:
                units[-1].notes.extend(comment_lines)
            continue
        title, notes, numbered = _title(comment_lines)
        units.append(Unit(command=sql, title=title, notes=notes, numbered=numbered, recognised=recognise_sql(sql)))
    return units


def promql_units(content: str) -> list[Unit]:
    units = []
    for paragraph in re.split(r"\n\s*\n", content.strip()):
        comments = [_comment_text(ln, "#") for ln in paragraph.splitlines() if ln.strip().startswith("#")]
        query = "\n".join(ln for ln in paragraph.splitlines() if not ln.strip().startswith("#")).strip()
        if not query:
            if units:
                units[-1].notes.extend(comments)
            continue
        title, notes, numbered = _title(comments)
        units.append(
            Unit(
                command=query,
                title=title,
                notes=notes,
                numbered=numbered,
                recognised=Recognised("prometheus_query", {"query": query}),
            )
        )
    return units


def code_units(info: str, content: str) -> list[Unit]:
    """Splits a fenced block by language; `text` blocks (sample output) give no units."""
    kind = language(info, content)
    if kind == "shell":
        return shell_units(content)
    if kind == "sql":
        return sql_units(content)
    if kind == "promql":
        return promql_units(content)
    if kind == "code":
        first = next((ln.strip() for ln in content.splitlines() if ln.strip()), "")
        comment = re.match(r"^(#|//|--)\s*(.+)$", first)
        title, _, numbered = _title([comment[2]] if comment else [])
        return [
            Unit(
                command=content.rstrip(),
                title=title,
                numbered=numbered,
                recognised=Recognised(safety=classify_code(content)),
            )
        ]
    return []
