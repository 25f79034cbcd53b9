"""Run parameters: the blanks a runbook's author left (`<pod-name>`, `[PID]`, `{{ $labels.instance }}`,
`api.example.com`), declared per step when a version is stored and filled when a run starts.

A step declares each parameter as `{"name", "written", "field", "context"}` (+ `"default": "base_url"`
for a placeholder host the target's base URL stands for): `written` is the placeholder as it appears in
`params[field]` (or in the command, for a manual step). A value is checked once for every context
(`check_value`), then put in the way its context needs: a quoted SQL literal placed by PostgreSQL's
own scanner (and the statement judged again by the read-only guard), percent-encoded in a URL, a host
name or IP for a host. A step whose parameter has no value is never run by itself.
"""

import ipaddress
import re
from urllib.parse import quote, urlsplit, urlunsplit

from pglast.parser import scan

from opsportal.errors import BadParameters

CONTEXTS = {"shell", "sql", "url", "host", "promql", "value"}
MAX_VALUE_LENGTH = 200
NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# What a value may never hold, whatever it fills: it would end a shell word, a quoted SQL or PromQL
# string, or start a command substitution in the command a person copies.
_REFUSED = set(";|&$`<>(){}[]*?!~#'\"\\^")
_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
# Stands in for a value when a step is checked before any run: the statement around a blank must be
# acceptable whatever safe value fills it.
SAMPLE = {"sql": "1", "url": "1", "host": "placeholder.invalid", "promql": "1", "value": "1", "shell": "1"}


class MissingParameters(BadParameters):
    """Steps of the run need values nobody gave: 400, naming them."""

    def __init__(self, message: str, names: list[str]):
        super().__init__(message, missing=names)
        self.names = names


def refuse(name: str, why: str) -> BadParameters:
    return BadParameters(f"params.{name}: {why}", field=f"params.{name}")


def check_value(name: str, value) -> str:
    """The value as given, or BadParameters naming the parameter (never echoing what was refused)."""
    if not isinstance(value, str) or not value.strip():
        raise refuse(name, "must be a non-empty text.")
    if len(value) > MAX_VALUE_LENGTH:
        raise refuse(name, f"is longer than {MAX_VALUE_LENGTH} characters.")
    bad = next((c for c in value if c in _REFUSED or c.isspace() or not c.isprintable()), None)
    if bad is not None:
        shown = repr(bad) if bad.isprintable() and not bad.isspace() else f"U+{ord(bad):04X}"
        raise refuse(
            name, f"contains {shown}; spaces, control characters and shell, SQL or URL metacharacters are refused."
        )
    return value


def check_host(name: str, value: str) -> str:
    """A host name or an IP address, with an optional port."""
    host, port = value, ""
    if value.startswith("[") or value.count(":") > 1:
        raise refuse(name, "must be a host name or an IPv4 address (with an optional :port).")
    if ":" in value:
        host, port = value.rsplit(":", 1)
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise refuse(name, "has a port that is not a number between 1 and 65535.")
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        labels = host.rstrip(".").split(".")
        if len(host) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
            raise refuse(name, "must be a host name or an IPv4 address (with an optional :port).") from None
    return value.lower()


def names(declared: list[dict]) -> list[str]:
    return list(dict.fromkeys(p["name"] for p in declared))


def unfilled(declared: list[dict], values: dict, *, base_url: bool) -> list[str]:
    """Names the step still needs a value for (a host with a base URL default needs none)."""
    return list(
        dict.fromkeys(
            p["name"] for p in declared if p["name"] not in values and not (p.get("default") == "base_url" and base_url)
        )
    )


def fill(params: dict, declared: list[dict], values: dict, *, base_url: bool = False) -> dict:
    """`params` with every declared blank filled from `values` (already checked with `check_value`).
    Raises MissingParameters when one has no value; the action validates the result as usual."""
    missing = unfilled([p for p in declared if p.get("field") in params], values, base_url=base_url)
    if missing:
        raise MissingParameters(f"No value for {', '.join(missing)}.", missing)
    filled = dict(params)
    by_field: dict[str, list[dict]] = {}
    for p in declared:
        if p.get("field") in params:
            by_field.setdefault(p["field"], []).append(p)
    for key, blanks in by_field.items():
        text = filled[key]
        if not isinstance(text, str):
            continue
        context = blanks[0]["context"]
        if context == "sql":
            filled[key] = fill_sql(text, {p["written"]: values[p["name"]] for p in blanks})
        elif context == "host":
            blank, parts = blanks[0], urlsplit(text)
            value = values.get(blank["name"])
            if value is None:  # the target's base URL stands for the example host
                del filled[key]
                filled["path"] = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            else:
                filled[key] = urlunsplit(parts._replace(netloc=check_host(blank["name"], value)))
        else:
            for p in blanks:
                value = values[p["name"]]
                text = text.replace(p["written"], quote(value, safe="") if context == "url" else value)
            filled[key] = text
    return filled


def fill_text(text: str, declared: list[dict], values: dict) -> str:
    """A manual step's command as a person copies it: given values in, the other blanks as written."""
    for p in declared:
        if p["name"] in values and p.get("context") == "shell":
            text = text.replace(p["written"], values[p["name"]])
    return text


def fill_sql(sql: str, values: dict[str, str]) -> str:
    """Each blank of `sql` filled with a literal: inside a string literal the value joins it, elsewhere
    it is a number or a new quoted string. Where the blank sits is decided by PostgreSQL's scanner."""
    markers: dict[str, str] = {}
    masked = sql
    for n, (written, value) in enumerate(values.items()):
        marker = f"zzopsportalblank{n}zz"
        markers[marker] = value
        masked = masked.replace(written, marker)
    data = masked.encode()
    strings = [(t.start, t.end + 1) for t in scan(masked) if t.name in {"SCONST", "USCONST", "XCONST", "BCONST"}]
    out, pos = [], 0
    for match in re.finditer(rb"zzopsportalblank\d+zz", data):
        value = markers[match.group(0).decode()]
        inside = any(start <= match.start() < end for start, end in strings)
        literal = value.replace("'", "''")
        if not inside and not re.fullmatch(r"-?\d+(\.\d+)?", value):
            literal = f"'{literal}'"
        out += [data[pos : match.start()], literal.encode()]
        pos = match.end()
    out.append(data[pos:])
    return b"".join(out).decode()


def from_labels(labels: dict) -> dict[str, str]:
    """Alert labels as parameter values by name (`pod-name` and `pod_name` alike); a label value that
    would be refused as a parameter is left out, so its steps wait for a person."""
    values = {}
    for key, value in (labels or {}).items():
        name = re.sub(r"[^a-z0-9]+", "_", str(key).lower()).strip("_")
        try:
            values[name] = check_value(name, value)
        except BadParameters:
            continue
    return values
