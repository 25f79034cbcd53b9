"""redis_check: PING, memory, hit rate, key counts (SCAN, never KEYS), TTL — nothing that writes."""

import time

import redis

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
    threshold_status,
)
from runbooks.choices import CheckStatus

SCAN_BATCH = 1000
SAMPLE = 20

CHECKS = {
    "ping": {},
    "info": {"warn_percent": 80, "critical_percent": 90},
    "info_memory": {"warn_percent": 80, "critical_percent": 90},
    "hit_rate": {"warn_below": 70, "critical_below": 50},
    "dbsize": {"warn_above": None, "critical_above": None},
    "count_keys": {"warn_above": None, "critical_above": None, "max_scan": 1_000_000},
    "ttl": {},
}
_TEXT_PARAMS = {"count_keys": "pattern", "ttl": "key"}


def validate(params: dict) -> dict:
    check = params.get("check")
    if check not in CHECKS:
        raise ParamsError(f"check must be one of: {', '.join(CHECKS)}.")
    text_param = _TEXT_PARAMS.get(check)
    only(params, {"check", "db", *CHECKS[check], *([text_param] if text_param else [])})
    clean: dict = {"check": check}
    if "db" in params:
        clean["db"] = int(number(params, "db", 0, minimum=0, maximum=10_000))
    for key, default in CHECKS[check].items():
        value = number(params, key, default, minimum=0)
        if value is not None:
            clean[key] = value
    if text_param:
        value = params.get(text_param)
        if not isinstance(value, str) or not value or len(value) > 500:
            raise ParamsError(f"{check} needs {text_param} (text, up to 500 characters).")
        clean[text_param] = value
    return clean


def describe(params: dict) -> str:
    extra = params.get("pattern") or params.get("key")
    return f"{params['check']} {extra}" if extra else params["check"]


def _client(url: str, params: dict, timeout: float) -> redis.Redis:
    kwargs = {"socket_connect_timeout": min(timeout, 5), "socket_timeout": timeout, "decode_responses": True}
    if "db" in params:
        kwargs["db"] = params["db"]
    try:
        return redis.Redis.from_url(url, **kwargs)
    except ValueError as exc:
        raise ActionError(f"The Redis URL is not usable: {exc}") from None


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return str(n)


def _memory(info: dict, p: dict) -> tuple[str, str, dict]:
    used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    ceiling = limit or int(info.get("total_system_memory", 0))
    percent = round(100 * used / ceiling, 1) if ceiling else 0.0
    status = threshold_status(percent, p["warn_percent"], p["critical_percent"])
    of = "maxmemory" if limit else "system memory (no maxmemory set)"
    summary = f"{_human(used)} used, {percent:g} % of {of} {_human(ceiling)}"
    if limit:
        summary += f", policy {info.get('maxmemory_policy', '?')}"
    figures = {
        "used_memory": used,
        "maxmemory": limit,
        "used_percent": percent,
        "fragmentation_ratio": float(info.get("mem_fragmentation_ratio", 0) or 0),
    }
    return status, summary, figures


def _hit_rate(stats: dict, p: dict) -> tuple[str, str, dict]:
    hits, misses = int(stats.get("keyspace_hits", 0)), int(stats.get("keyspace_misses", 0))
    figures = {"hits": hits, "misses": misses, "evicted_keys": int(stats.get("evicted_keys", 0))}
    if hits + misses == 0:
        return CheckStatus.OK, "No key lookups since the last restart", {**figures, "hit_rate_percent": None}
    rate = round(100 * hits / (hits + misses), 1)
    status = threshold_status(rate, p.get("warn_below"), p.get("critical_below"), higher_is_worse=False)
    return status, f"Hit rate {rate:g} % ({hits} hits, {misses} misses)", {**figures, "hit_rate_percent": rate}


def _count(client: redis.Redis, p: dict, timeout: float) -> CheckResult:
    started, cursor, scanned, count, sample, complete = time.monotonic(), 0, 0, 0, [], True
    while True:
        cursor, keys = client.scan(cursor=cursor, match=p["pattern"], count=SCAN_BATCH)
        scanned += SCAN_BATCH
        count += len(keys)
        sample.extend(keys[: SAMPLE - len(sample)])
        if cursor == 0:
            break
        if scanned >= p["max_scan"] or time.monotonic() - started > timeout * 0.8:
            complete = False
            break
    status = threshold_status(count, p.get("warn_above"), p.get("critical_above"))
    summary = f"{count}{'' if complete else '+'} keys match {p['pattern']}" + (
        "" if complete else " (stopped early; the count is a lower bound)"
    )
    return CheckResult(
        status,
        summary,
        figures={"keys": count, "complete": complete},
        output="\n".join([summary, "", *sample]),
        data={"sample": sample},
    )


def _run(client: redis.Redis, p: dict, timeout: float) -> CheckResult:
    check = p["check"]
    if check == "ping":
        started = time.perf_counter()
        client.ping()
        ms = round((time.perf_counter() - started) * 1000, 2)
        return CheckResult(CheckStatus.OK, f"PONG in {ms:g} ms", figures={"latency_ms": ms}, output="PONG")
    if check == "info_memory":
        info = client.info("memory")
        status, summary, figures = _memory(info, p)
        return CheckResult(status, summary, figures, output="\n".join(f"{k}: {v}" for k, v in info.items()))
    if check == "hit_rate":
        status, summary, figures = _hit_rate(client.info("stats"), p)
        return CheckResult(status, summary, figures, output=summary)
    if check == "info":
        info = client.info()
        mem_status, mem_summary, figures = _memory(info, p)
        _, hit_summary, hit_figures = _hit_rate(info, {})
        days = int(info.get("uptime_in_seconds", 0)) // 86400
        summary = (
            f"Redis {info.get('redis_version', '?')}, up {days} d, {info.get('connected_clients', '?')} clients; "
            f"{mem_summary}; {hit_summary.lower()}"
        )
        keyspace = {k: v for k, v in info.items() if k.startswith("db") and isinstance(v, dict)}
        figures = {**figures, **hit_figures, "connected_clients": info.get("connected_clients"), "keyspace": keyspace}
        return CheckResult(mem_status, summary, figures, output=summary)
    if check == "dbsize":
        size = client.dbsize()
        status = threshold_status(size, p.get("warn_above"), p.get("critical_above"))
        return CheckResult(status, f"{size} keys in this database", figures={"keys": size}, output=str(size))
    if check == "count_keys":
        return _count(client, p, timeout)
    ttl = client.ttl(p["key"])
    if ttl == -2:
        return CheckResult(CheckStatus.WARNING, f"Key {p['key']} does not exist", figures={"ttl": ttl}, output="-2")
    summary = f"Key {p['key']} has no expiry" if ttl == -1 else f"Key {p['key']} expires in {ttl} s"
    return CheckResult(CheckStatus.OK, summary, figures={"ttl": ttl}, output=str(ttl))


def run(params: dict, target: Target, timeout: float) -> CheckResult:
    params = validate(params)
    client = _client(target.setting("redis_url"), params, timeout)
    try:
        return _run(client, params, timeout)
    except redis.exceptions.AuthenticationError as exc:
        raise ActionError(f"Redis refused the credentials: {exc}") from None
    except redis.exceptions.TimeoutError as exc:
        if "connecting" in str(exc).lower():
            raise TransientError(f"Could not connect to Redis: {exc}") from None
        raise StepTimeout(f"Redis did not answer within {timeout:g} s.") from None
    except redis.exceptions.ConnectionError as exc:
        raise TransientError(f"Could not connect to Redis: {exc}") from None
    except redis.exceptions.RedisError as exc:
        raise ActionError(f"Redis answered with an error: {exc}") from None
    finally:
        client.close()


ACTION = Action(
    name="redis_check",
    label="Redis check",
    run=run,
    validate=validate,
    setting="redis_url",
    describe=describe,
)
