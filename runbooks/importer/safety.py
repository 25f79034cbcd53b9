"""Default deny: a command is `read_only` only when a rule for its tool recognises it as a read.

Every simple command of a statement is judged (pipeline segments, `&&`/`;` parts, `$(...)`,
control-flow bodies, `sudo`/`xargs`/`kubectl exec` wrappers, each SQL statement inside a quoted
`psql -c`) and the most dangerous verdict decides. A command no rule knows is a `change` that a
person runs or confirms, and is reported as unclassified so the author can look at it.
"""

import re
from dataclasses import dataclass

from pglast import parse_sql
from pglast.parser import ParseError

from runbooks.actions.postgres import UnsafeSQL, check_read_only
from runbooks.choices import SAFETY_RANK, Safety
from runbooks.importer.shell import Command, Statement, parse
from runbooks.placeholders import mask_sql

READ, CHANGE, DANGER = Safety.READ_ONLY, Safety.CHANGE, Safety.DANGEROUS


@dataclass
class Verdict:
    safety: str
    reason: str = ""
    known: bool = True  # False: no rule recognised it (a change by default)

    def __or__(self, other: "Verdict") -> "Verdict":
        if SAFETY_RANK[other.safety] > SAFETY_RANK[self.safety]:
            return other
        if other.safety == self.safety and self.known and not other.known:
            return other
        return self


def read(reason: str = "") -> Verdict:
    return Verdict(READ, reason)


def change(reason: str) -> Verdict:
    return Verdict(CHANGE, reason)


def danger(reason: str) -> Verdict:
    return Verdict(DANGER, reason)


def unknown(words: list[str]) -> Verdict:
    shown = " ".join(words[:3])
    return Verdict(CHANGE, f"not recognised as a read: {shown}", known=False)


# Tools that only ever read (their write options are checked below where they have some).
_READERS = {
    "df", "free", "ps", "top", "htop", "uptime", "vmstat", "iostat", "mpstat", "pidstat", "sar", "netstat", "ss",
    "dig", "nslookup", "host", "ping", "traceroute", "mtr", "tail", "head", "cat", "zcat", "less", "more", "grep",
    "egrep", "fgrep", "zgrep", "rg", "awk", "jq", "yq", "wc", "sort", "uniq", "cut", "tr", "column", "ls", "du",
    "stat", "file", "echo", "printf", "date", "hostname", "whoami", "id", "env", "printenv", "lsof", "which",
    "test", "[", "[[", "true", "false", "sleep", "read", "pg_isready", "dmesg", "nproc", "lscpu", "lsblk",
    "findmnt", "uname", "openssl", "nc", "telnet", "base64", "xxd", "diff", "basename", "dirname", "realpath",
    "seq", "expr", "bc", "getent", "tput", "clear", "history", "type", "command", "journalctl", "iotop",
    "ncdu", "nvidia-smi", "numfmt", "sha256sum", "md5sum", "curlie", "http", "strace", "pgrep", "timeout_",
    "exit", "return", "set", "local", "declare", "export", "cd", "pwd", "shift", "wait", "trap", "source",
}  # fmt: skip
_WRAPPERS = {"sudo", "time", "nice", "ionice", "nohup", "watch", "timeout", "env", "exec", "command", "stdbuf"}
_KILLERS = {"kill", "pkill", "killall", "skill"}
_DELETERS = {"rm", "rmdir", "shred", "unlink", "truncate", "wipefs", "mkfs", "fdisk", "parted", "dd"}
_POWER = {"reboot", "shutdown", "halt", "poweroff"}
_SQL_DANGER_STATEMENTS = {
    "DeleteStmt", "UpdateStmt", "TruncateStmt", "DropStmt", "DropdbStmt", "DropRoleStmt", "DropTableSpaceStmt",
    "AlterSystemStmt", "AlterTableStmt", "AlterDatabaseStmt", "AlterDatabaseSetStmt", "AlterRoleStmt",
    "AlterRoleSetStmt", "IndexStmt", "ReindexStmt", "ClusterStmt", "LockStmt", "RenameStmt", "GrantStmt",
    "GrantRoleStmt", "CopyStmt", "InsertStmt", "MergeStmt", "CreateStmt", "CreateTableAsStmt", "DoStmt",
    "CallStmt", "AlterOwnerStmt", "DropOwnedStmt", "ReassignOwnedStmt", "AlterSeqStmt", "CreateFunctionStmt",
    "RefreshMatViewStmt", "AlterTableSpaceOptionsStmt", "CheckPointStmt",
}  # fmt: skip
_SQL_DANGER_FUNCTIONS = re.compile(
    r"\b(pg_terminate_backend|pg_cancel_backend|pg_reload_conf|pg_promote|pg_drop_replication_slot"
    r"|pg_replication_slot_advance|pg_switch_wal|pg_wal_replay_pause|pg_stat_reset\w*|pg_stat_statements_reset"
    r"|setval|lo_unlink|pg_rotate_logfile|dblink_exec)\s*\(",
    re.I,
)


def judge(commands: list[Command], statements: list[Statement] = ()) -> Verdict:
    verdict = read()
    if any(s.error for s in statements):
        verdict = Verdict(CHANGE, "shell that the grammar cannot read", known=False)
    for command in commands:
        verdict = verdict | judge_command(command)
    return verdict


def judge_command(command: Command) -> Verdict:
    verdict = _redirects(command)
    if command.words:
        verdict = verdict | judge_words(command.words)
    return verdict


_TRUNCATORS = [[], [":"], ["true"], ["cat", "/dev/null"], ["echo", "-n"], ["printf", ""], ["echo", ""]]


def _redirects(command: Command) -> Verdict:
    verdict = read()
    for redirect in command.redirects:
        target = redirect.target.strip()
        if redirect.operator in {">", ">|", "&>"} and not _harmless_sink(target):
            if command.words in _TRUNCATORS:
                verdict = verdict | danger(f"truncates {target}")
            else:
                verdict = verdict | change(f"writes {target}")
        elif redirect.operator in {">>", "&>>"} and not _harmless_sink(target):
            verdict = verdict | change(f"appends to {target}")
        elif redirect.operator == "<" and command.program in {"psql", "mysql", "redis-cli", "pg_restore"}:
            verdict = verdict | danger(f"replays {target} into the {command.program} server")
    return verdict


def _harmless_sink(target: str) -> bool:
    return target in {"/dev/null", "/dev/stdout", "/dev/stderr", "&1", "&2", "1", "2", "-"} or target.startswith("&")


def strip_wrappers(words: list[str]) -> list[str]:
    while words:
        program = words[0].rsplit("/", 1)[-1]
        if re.match(r"^[A-Za-z_]\w*=", program):
            words = words[1:]
            continue
        if program not in _WRAPPERS or len(words) == 1:
            return words
        rest = words[1:]
        # Options of the wrapper itself (`sudo -u postgres`, `timeout 10`, `watch -n 5`).
        while rest and (rest[0].startswith("-") or re.match(r"^\d+[smhd]?$", rest[0]) or "=" in rest[0]):
            takes_value = rest[0] in {"-u", "-g", "-n", "-s", "-k", "--signal", "--user"}
            rest = rest[2:] if takes_value else rest[1:]
        words = rest
    return words


def judge_words(words: list[str]) -> Verdict:
    words = strip_wrappers(list(words))
    if not words:
        return read()
    program = words[0].rsplit("/", 1)[-1]
    args = words[1:]
    rule = _RULES.get(program)
    if rule is not None:
        return rule(args)
    if program in _KILLERS:
        return danger("kills processes")
    if program in _DELETERS:
        return danger("deletes or overwrites data")
    if program in _POWER:
        return danger("restarts the machine")
    if program in _READERS:
        return read()
    if program == ":" or program.startswith("__ph"):
        return read()
    return unknown(words)


def _sub(args: list[str], *, skip: set[str] = frozenset()) -> list[str]:
    """The positional words (sub-commands), options and their values left out."""
    out, n = [], 0
    while n < len(args):
        arg = args[n]
        if arg in skip:
            n += 2
            continue
        if not arg.startswith("-"):
            out.append(arg)
        n += 1
    return out


# --- per tool --------------------------------------------------------------------------------


def _curl(args: list[str]) -> Verdict:
    method = "GET"
    as_query = "-G" in args or "--get" in args  # the data goes into the query string of a GET
    for n, arg in enumerate(args):
        if arg in {"-X", "--request"} and n + 1 < len(args):
            method = args[n + 1].upper()
        elif re.match(r"^-X[A-Z]+$", arg):
            method = arg[2:].upper()
        elif arg.startswith(("--request=",)):
            method = arg.split("=", 1)[1].upper()
        elif (
            (arg in {"-d", "-F", "-T", "--form", "--upload-file", "--json"} or arg.startswith(("--data", "-d")))
            and method == "GET"
            and not as_query
        ):
            method = "POST"
        elif arg in {"-o", "--output", "-O", "--remote-name"}:
            return change("saves a file")
    if method == "DELETE":
        return danger("sends an HTTP DELETE")
    if method in {"GET", "HEAD", "OPTIONS"}:
        return read()
    return change(f"sends an HTTP {method}")


def _wget(args: list[str]) -> Verdict:
    if "--spider" in args or any(a in {"-O-", "-qO-", "-O", "--output-document=-"} for a in args):
        if "--post-data" in " ".join(args) or "--method=DELETE" in args:
            return danger("sends a write request")
        return read()
    return change("downloads a file")


def _sed(args: list[str]) -> Verdict:
    return change("edits files in place") if any(a.startswith("-i") or a == "--in-place" for a in args) else read()


def _find(args: list[str]) -> Verdict:
    if "-delete" in args or any(a in {"-exec", "-execdir", "-ok"} for a in args):
        if "-delete" in args or any(a in {"rm", "/bin/rm", "shred", "truncate"} for a in args):
            return danger("deletes files")
        return change("runs a command on every file found")
    return read()


def _tee(args: list[str]) -> Verdict:
    files = [a for a in args if not a.startswith("-") and not _harmless_sink(a)]
    return change(f"writes {files[0]}") if files else read()


def _xargs(args: list[str]) -> Verdict:
    rest, n = [], 0
    while n < len(args):
        if args[n].startswith("-"):
            n += 2 if args[n] in {"-n", "-I", "-P", "-L", "-d", "-s", "-E"} else 1
            continue
        rest = args[n:]
        break
    inner = judge_words(rest) if rest else read()
    if inner.safety != READ:
        # Applied to every line of the input: a write becomes a bulk write.
        return danger(f"applies to every input line: {inner.reason}")
    return inner


def _shell(args: list[str]) -> Verdict:
    if "-c" in args and args.index("-c") + 1 < len(args):
        return judge([c for s in parse(args[args.index("-c") + 1]) for c in s.commands])
    return unknown(["sh", *args])


def _systemctl(args: list[str]) -> Verdict:
    sub = _sub(args)
    verb = sub[0] if sub else "status"
    if verb in {"status", "is-active", "is-enabled", "is-failed", "list-units", "list-timers", "show", "cat"}:
        return read()
    if verb in {"stop", "restart", "reload", "kill", "disable", "mask", "try-restart", "reload-or-restart"}:
        return danger(f"systemctl {verb} interrupts a service")
    return change(f"systemctl {verb}")


def _service(args: list[str]) -> Verdict:
    sub = _sub(args)
    verb = sub[1] if len(sub) > 1 else "status"
    if verb == "status":
        return read()
    if verb in {"stop", "restart", "reload", "force-reload"}:
        return danger(f"service {verb} interrupts a service")
    return change(f"service {verb}")


_DOCKER_READ = {
    "ps",
    "logs",
    "inspect",
    "stats",
    "images",
    "top",
    "version",
    "info",
    "events",
    "port",
    "diff",
    "history",
}


def _docker(args: list[str]) -> Verdict:
    sub = _sub(args, skip={"-f", "--file", "-p", "--project-name", "-H", "--context"})
    if sub[:1] == ["compose"]:
        return _compose(args[args.index("compose") + 1 :])
    verb, rest = (sub[0] if sub else ""), sub[1:]
    if verb in {"container", "image", "volume", "network", "system", "builder"} and rest:
        verb = f"{verb} {rest[0]}"
    if verb in _DOCKER_READ or verb.split(" ")[-1] in {"ls", "inspect", "df", "list"}:
        return read()
    if verb == "exec":
        return _exec_inner(args, "docker exec")
    if re.search(r"\b(rm|rmi|kill|stop|restart|prune)\b", verb):
        return danger(f"docker {verb} stops or removes containers or data")
    return change(f"docker {verb or 'command'}")


def _compose(args: list[str]) -> Verdict:
    sub = _sub(args, skip={"-f", "--file", "-p", "--project-name", "--env-file"})
    verb = sub[0] if sub else ""
    if verb in {"ps", "logs", "config", "top", "images", "ls", "version", "events", "port"}:
        return read()
    if verb in {"down", "rm", "kill", "stop", "restart"}:
        return danger(f"docker compose {verb} stops containers")
    if verb == "exec":
        return _exec_inner(args, "docker compose exec")
    return change(f"docker compose {verb or 'command'}")


def _docker_compose(args: list[str]) -> Verdict:
    return _compose(args)


_KUBECTL_VALUE_OPTIONS = {
    "-n",
    "--namespace",
    "--context",
    "-c",
    "--container",
    "-l",
    "--selector",
    "-o",
    "--kubeconfig",
}


def _kubectl(args: list[str]) -> Verdict:
    sub = _sub(args, skip=_KUBECTL_VALUE_OPTIONS)
    verb = sub[0] if sub else ""
    if verb in {"get", "describe", "logs", "top", "explain", "version", "cluster-info", "api-resources", "events"}:
        return read()
    if verb == "auth" or (verb == "config" and sub[1:2] and sub[1] in {"get-contexts", "current-context", "view"}):
        return read()
    if verb == "rollout":
        action = sub[1] if len(sub) > 1 else ""
        if action in {"status", "history"}:
            return read()
        return danger(f"kubectl rollout {action} replaces pods")
    if verb == "scale":
        replicas = next((a.split("=", 1)[1] for a in args if a.startswith("--replicas=")), None)
        if replicas is None and "--replicas" in args and args.index("--replicas") + 1 < len(args):
            replicas = args[args.index("--replicas") + 1]
        if replicas == "0":
            return danger("scales to zero")
        return change("changes the number of replicas")
    if verb == "exec":
        return _exec_inner(args, "kubectl exec")
    if verb in {"port-forward", "proxy", "cp"}:
        return change(f"kubectl {verb}")
    if verb in {"delete", "drain", "cordon", "edit", "patch", "apply", "replace", "set", "create", "annotate"}:
        return danger(f"kubectl {verb} changes the cluster ({'restarts pods' if verb == 'set' else 'live objects'})")
    if verb in {"label", "taint", "uncordon", "autoscale", "expose", "run"}:
        return change(f"kubectl {verb}")
    return unknown(["kubectl", *sub[:2]])


def exec_inner_words(args: list[str]) -> list[str]:
    return args[args.index("--") + 1 :] if "--" in args else []


def _exec_inner(args: list[str], label: str) -> Verdict:
    inner = exec_inner_words(args)
    if not inner:
        return change(f"{label} opens a shell in the container")
    return judge_words(inner)


def _helm(args: list[str]) -> Verdict:
    sub = _sub(args, skip={"-n", "--namespace", "--kube-context", "-f", "--values", "--set", "--version"})
    verb = sub[0] if sub else ""
    if verb in {"list", "ls", "status", "history", "get", "show", "template", "search", "version", "env", "lint"}:
        return read()
    if verb == "repo" and sub[1:2] == ["list"]:
        return read()
    if verb in {"rollback", "uninstall", "delete", "upgrade", "install"}:
        return danger(f"helm {verb} deploys or removes a release")
    return change(f"helm {verb or 'command'}")


_AWS_DANGER = re.compile(
    r"^(delete|terminate|stop|reboot|modify|restore|failover|promote|purge|deregister|detach|revoke|disable"
    r"|remove|cancel|reset|force|switchover|deactivate)-"
)


def _aws(args: list[str]) -> Verdict:
    sub = _sub(args, skip={"--region", "--profile", "--output", "--query", "--endpoint-url"})
    service, operation = [*sub, "", ""][:2]
    if service in {"s3"}:
        if operation in {"ls"}:
            return read()
        if operation in {"rm", "rb", "mv"} or "--delete" in args:
            return danger(f"aws s3 {operation} deletes objects")
        return change(f"aws s3 {operation}")
    if service == "logs" and operation in {"tail", "filter-log-events", "get-log-events", "start-query"}:
        return read()
    if re.match(r"^(describe|list|get|lookup|search|batch-get|head)-", operation) or operation in {"wait"}:
        return read()
    if service == "sts" and operation == "get-caller-identity":
        return read()
    if _AWS_DANGER.match(operation):
        return danger(f"aws {service} {operation}")
    if operation == "update-service" and "--force-new-deployment" in args:
        return danger("aws ecs update-service --force-new-deployment replaces every task")
    if operation in {"set-desired-capacity", "update-auto-scaling-group"}:
        capacity = [args[n + 1] for n, a in enumerate(args[:-1]) if a in {"--desired-capacity", "--max-size"}]
        if "0" in capacity:
            return danger("scales to zero")
        return change(f"aws {service} {operation} changes capacity")
    if re.match(r"^(update|put|create|start|run|invoke|execute|send|publish|set|attach|associate|tag)-", operation):
        return change(f"aws {service} {operation}")
    return unknown(["aws", service, operation])


def _gcloud(args: list[str]) -> Verdict:
    sub = _sub(args, skip={"--project", "--region", "--zone", "--format"})
    if any(v in {"list", "describe", "get", "read", "tail"} for v in sub):
        return read()
    if any(v in {"delete", "stop", "reset", "restore", "failover", "promote-replica"} for v in sub):
        return danger(f"gcloud {' '.join(sub[:3])}")
    return change(f"gcloud {' '.join(sub[:3])}")


def _terraform(args: list[str]) -> Verdict:
    sub = _sub(args)
    verb = sub[0] if sub else ""
    reads = {"plan", "show", "output", "validate", "version", "providers", "graph", "fmt"}
    if verb in reads and "-destroy" not in args:
        return read() if verb != "fmt" else change("terraform fmt rewrites files")
    if verb in {"apply", "destroy", "import", "taint", "untaint", "force-unlock"} or (
        verb == "state" and sub[1:2] and sub[1] in {"rm", "mv", "push", "replace-provider"}
    ):
        return danger(f"terraform {verb} changes infrastructure")
    if verb == "state" and sub[1:2] and sub[1] in {"list", "show", "pull"}:
        return read()
    return change(f"terraform {verb or 'command'}")


def _git(args: list[str]) -> Verdict:
    sub = _sub(args, skip={"-C"})
    verb = sub[0] if sub else ""
    if verb in {"status", "log", "diff", "show", "blame", "branch", "remote", "rev-parse", "describe", "tag", "fetch"}:
        return read() if verb not in {"branch", "tag"} or len(sub) == 1 else change(f"git {verb}")
    if verb in {"reset", "clean", "push"} and any(a in {"--hard", "-f", "--force", "-fd", "-fdx"} for a in args):
        return danger(f"git {verb} discards work")
    return change(f"git {verb or 'command'}")


def _npm(args: list[str]) -> Verdict:
    sub = _sub(args)
    verb = sub[0] if sub else ""
    if verb in {"ls", "list", "view", "outdated", "audit", "version", "config"} and "fix" not in sub:
        return read() if verb != "config" or sub[1:2] in (["get"], ["list"]) else change("npm config")
    if verb == "cache" and sub[1:2] in (["clean"], ["clear"], ["rm"]):
        return danger("npm cache clean deletes the package cache")
    if verb == "prune":
        return danger("npm prune removes packages")
    return change(f"npm {verb or 'command'}")


def _pm2(args: list[str]) -> Verdict:
    sub = _sub(args)
    verb = sub[0] if sub else ""
    if verb in {"list", "ls", "status", "logs", "show", "describe", "monit", "info", "jlist", "prettylist"}:
        return read()
    if verb in {"stop", "delete", "kill", "restart", "reload", "flush"}:
        return danger(f"pm2 {verb}")
    return change(f"pm2 {verb or 'command'}")


def _journalctl(args: list[str]) -> Verdict:
    if any(a.startswith(("--vacuum", "--rotate", "--flush")) for a in args):
        return danger("removes journal files")
    return read()


def _pg_ctl(args: list[str]) -> Verdict:
    sub = _sub(args, skip={"-D", "-m", "-o", "-l", "-w", "-t"})
    verb = sub[0] if sub else ""
    if verb == "status":
        return read()
    if verb in {"stop", "restart", "promote", "kill", "reload"}:
        return danger(f"pg_ctl {verb}")
    return change(f"pg_ctl {verb or 'command'}")


def _python(args: list[str]) -> Verdict:
    if args[:2] and args[0] == "-m" and len(args) > 1 and args[1] in {"json.tool", "http.server"}:
        return read() if args[1] == "json.tool" else change("starts a server")
    if args[:1] == ["-c"]:
        return unknown(["python", "-c"])
    return unknown(["python", *args[:2]])


def _celery(args: list[str]) -> Verdict:
    sub = _sub(args, skip={"-A", "--app", "-b", "--broker", "-d", "--destination", "-Q", "--queues"})
    if sub[:1] in (["inspect"], ["status"], ["report"]) or sub[:2] == ["events", "--dump"]:
        return read()
    if sub[:1] == ["purge"] or sub[:2] in (["control", "shutdown"], ["control", "revoke"]):
        return danger(f"celery {' '.join(sub[:2])}")
    return change(f"celery {' '.join(sub[:2])}")


def _pg_restore(args: list[str]) -> Verdict:
    return danger("pg_restore overwrites a database" + (" (dropping objects first)" if "-c" in args else ""))


def _pg_archivecleanup(args: list[str]) -> Verdict:
    return danger("pg_archivecleanup deletes WAL files")


def _pg_dump(args: list[str]) -> Verdict:
    return change("pg_dump loads the database and writes a dump")


def _mysql(args: list[str]) -> Verdict:
    return unknown(["mysql", *args[:1]])


_RULES = {
    "curl": _curl,
    "wget": _wget,
    "sed": _sed,
    "find": _find,
    "tee": _tee,
    "xargs": _xargs,
    "sh": _shell,
    "bash": _shell,
    "systemctl": _systemctl,
    "service": _service,
    "docker": _docker,
    "docker-compose": _docker_compose,
    "kubectl": _kubectl,
    "oc": _kubectl,
    "helm": _helm,
    "aws": _aws,
    "gcloud": _gcloud,
    "terraform": _terraform,
    "tofu": _terraform,
    "git": _git,
    "npm": _npm,
    "pm2": _pm2,
    "journalctl": _journalctl,
    "pg_ctl": _pg_ctl,
    "pg_ctlcluster": _pg_ctl,
    "python": _python,
    "python3": _python,
    "celery": _celery,
    "pg_restore": _pg_restore,
    "pg_archivecleanup": _pg_archivecleanup,
    "pg_dump": _pg_dump,
    "pg_dumpall": _pg_dump,
    "mysql": _mysql,
}


def register(program: str, rule) -> None:
    """The psql and redis-cli rules live with their recognisers in commands.py."""
    _RULES[program] = rule


# --- SQL -----------------------------------------------------------------------------------


def judge_sql(sql: str) -> Verdict:
    """Every statement of `sql`, each through the read-only guard; what it refuses is judged by its
    statement type in PostgreSQL's own grammar."""
    masked = mask_sql(sql)
    try:
        statements = parse_sql(masked)
    except ParseError:
        return Verdict(CHANGE, "SQL that PostgreSQL's grammar does not parse", known=False)
    verdict = read()
    for raw in statements:
        node = raw.stmt
        start = raw.stmt_location or 0
        text = masked[start : start + raw.stmt_len] if raw.stmt_len else masked[start:]
        try:
            check_read_only(text)
            continue
        except UnsafeSQL as exc:
            refused = str(exc)
        kind = type(node).__name__
        if _SQL_DANGER_FUNCTIONS.search(text):
            verdict = verdict | danger(f"SQL: {_SQL_DANGER_FUNCTIONS.search(text)[1]}")
        elif kind in _SQL_DANGER_STATEMENTS:
            verdict = verdict | danger(f"SQL: {kind.removesuffix('Stmt')}")
        elif kind == "VacuumStmt" and re.search(r"\bFULL\b", text, re.I):
            verdict = verdict | danger("SQL: VACUUM FULL locks the table")
        elif kind == "SelectStmt" and re.search(r"\bFOR\s+(UPDATE|SHARE|NO KEY|KEY)\b", text, re.I):
            verdict = verdict | danger("SQL: SELECT ... FOR UPDATE locks rows")
        else:
            verdict = verdict | change(f"SQL: {refused}")
    return verdict
