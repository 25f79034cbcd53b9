"""Placeholders an author leaves for the reader to fill in: `<pod-name>`, `[PID]`, `${NAMESPACE}`,
`{{ $labels.instance }}`, `your-domain`, `'[0.1, 0.2, ...]'`. They become the parameters of a run
(asked for when it starts, or filled from the alert's labels of the same name), and hosts such as
example.com are the target service, never a real host to call."""

import re
from collections.abc import Callable
from urllib.parse import urlsplit

# Each pattern's first group (when present) names the parameter.
_PATTERNS = [
    re.compile(r"\{\{\s*\.?\$?(?:labels\.|\.Labels\.)?([A-Za-z_][\w]*)\s*\}\}"),
    re.compile(r"<([A-Za-z][\w.-]*)>"),
    re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}"),
    re.compile(r"\[([A-Z][A-Z0-9_]+(?: [A-Z0-9_]+)*)\]"),
    re.compile(r"\[[^\]\n]*\.\.\.[^\]\n]*\]"),
    re.compile(r"\b(?:your|YOUR)[-_]([A-Za-z][\w-]*)"),
]
# Served by the target service (its base URL, database, cache), not asked for.
_TARGET_NAMES = re.compile(r"(?i)^(.*_)?(url|uri|dsn|host|hostname|port|domain|base_url|database_url|redis_url)$")
_HOST_PLACEHOLDER = re.compile(
    r"(?i)^(localhost|127\.0\.0\.1|0\.0\.0\.0|::1|host|hostname|server|your[-_]\S+|(.+\.)?example\.(com|org|net)"
    r"|__ph\d+__)$"
)
# Shell parsing: `<name>` and `{{ ... }}` are not shell; they are masked by a token of the same word shape.
_SHELL_MASKED = re.compile(r"<[A-Za-z][\w.-]*>|\{\{[^{}\n]*\}\}")


def name_of(match: re.Match) -> str:
    raw = match.group(1) if match.re.groups and match.group(1) else "values"
    return re.sub(r"[^a-z0-9]+", "_", raw.lower()).strip("_") or "value"


def find(text: str) -> list[str]:
    """Parameter names in the order they appear, without those the target service provides."""
    return list(dict.fromkeys(name for _, name in tokens(text)))


def tokens(text: str) -> list[tuple[str, str]]:
    """(as written, parameter name) for every placeholder that is asked for."""
    out: list[tuple[int, str, str]] = []
    taken: list[tuple[int, int]] = []
    for pattern in _PATTERNS:
        for match in pattern.finditer(text or ""):
            if any(start <= match.start() < end for start, end in taken):
                continue
            taken.append((match.start(), match.end()))
            name = name_of(match)
            if not _TARGET_NAMES.match(name):
                out.append((match.start(), match.group(0), name))
    return [(written, name) for _, written, name in sorted(out)]


def has_example_list(text: str) -> bool:
    """`'[0.1, 0.2, ...]'`: an example of a shape, which no single safe value fills."""
    return bool(_PATTERNS[4].search(text or ""))


def is_placeholder_host(host: str) -> bool:
    return bool(_HOST_PLACEHOLDER.match(host or ""))


def mask(text: str) -> tuple[str, Callable[[str], str]]:
    """Replaces what the shell grammar would misread with plain words; returns the function that
    puts them back into any piece of the masked text."""
    originals: list[str] = []

    def token(match: re.Match) -> str:
        originals.append(match.group(0))
        return f"__ph{len(originals) - 1}__"

    masked = _SHELL_MASKED.sub(token, text)

    def restore(piece: str) -> str:
        return re.sub(r"__ph(\d+)__", lambda m: originals[int(m[1])], piece) if originals else piece

    return masked, restore


def mask_sql(sql: str) -> str:
    """Placeholders as plain identifiers (one stands for a value or a name alike), so that the
    statement around them can be judged by the grammar."""
    sql = re.sub(r"(?<![:\w]):'?([A-Za-z_]\w*)'?(?!:)", "ph_value", sql)  # psql variables :name / :'name'
    for pattern in _PATTERNS:
        sql = pattern.sub("ph_value", sql)
    return sql


# Hosts that only stand for "the service": the target's base URL fills them unless a value is given.
_GENERIC_HOST = re.compile(r"(?i)^((www|api|app)\.)?(example\.(com|org|net)|your[-_][\w.-]+)$")
_EXAMPLE_HOST = re.compile(r"(?i)^(.+\.)?(example\.(com|org|net)|your[-_][\w.-]+)$")
_CONTEXT_OF_ACTION = {"postgres_query": "sql", "prometheus_query": "promql", "http_check": "url"}


def host_parameter(host: str, field: str) -> dict | None:
    """`api.example.com` is the target (its base URL by default); `payments.example.com` names
    another service, whose host has to be given."""
    if not _EXAMPLE_HOST.match(host or ""):
        return None
    if _GENERIC_HOST.match(host):
        return {"name": "host", "written": host, "field": field, "context": "host", "default": "base_url"}
    name = re.sub(r"[^a-z0-9]+", "_", host.lower().split(".")[0]).strip("_") + "_host"
    return {"name": name, "written": host, "field": field, "context": "host"}


def declare(*, automated: bool, action: str, params: dict, command: str) -> list[dict]:
    """The parameters a step needs: for an automated step those in what it runs (its params), for a
    manual one those in the command a person copies."""
    if not automated:
        return [{"name": n, "written": w, "field": "command", "context": "shell"} for w, n in _unique(command)]
    declared: list[dict] = []
    for key, value in params.items():
        if not isinstance(value, str):
            continue
        if action == "http_check" and key == "url":
            host = host_parameter(urlsplit(value).hostname or "", key)
            if host is not None:
                declared.append(host)
                continue
        context = _CONTEXT_OF_ACTION.get(action, "value")
        declared += [{"name": n, "written": w, "field": key, "context": context} for w, n in _unique(value)]
    return declared


def _unique(text: str) -> list[tuple[str, str]]:
    return list(dict.fromkeys(tokens(text)))
