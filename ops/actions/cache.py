"""Cache remediation: invalidate by tag (the portal's tagged cache) or by key pattern (SCAN + DEL in
batches, never KEYS), warm the portal's hot pages, flush. A service's Redis URL, or the portal's cache
when there is no target; a flush of the portal's cache deletes only its own keys (the broker may share the database).

An invalidation by pattern is judged by its effect, not its syntax (`[^~]*` deletes as much as `*`):
the matching keys are counted first (SCAN, bounded), and deleting every key of the cache, or more than
OPS_CACHE_INVALIDATE_MAX_KEYS, is dangerous: it runs only as an approved request or a dangerous step.
"""

import re
from contextlib import contextmanager

import redis
from django.conf import settings

from runbooks.actions.base import Action, ActionError, CheckResult, ParamsError, Target, TransientError, flag, only
from runbooks.choices import CheckStatus, Safety

SCAN_BATCH = 500
# Counting stops after this many SCAN calls (~ SCAN_BATCH keys looked at each): a count that could
# not finish is taken as "too many".
COUNT_MAX_CALLS = 2000
_WILDCARDS_ONLY = re.compile(r"^[*?\[\]]*$")


def matches_everything(pattern: str) -> bool:
    return bool(_WILDCARDS_ONLY.match(pattern))


def _validate_invalidate(params: dict) -> dict:
    only(params, {"tags", "pattern", "dangerous", "dry_run"})
    clean = {"dry_run": flag(params, "dry_run"), "dangerous": flag(params, "dangerous")}
    tags, pattern = params.get("tags"), params.get("pattern")
    if (tags is None) == (pattern is None):
        raise ParamsError("give either tags (a non-empty list) or pattern (a key pattern).")
    if tags is not None:
        if not isinstance(tags, list) or not tags or not all(isinstance(t, str) and t for t in tags):
            raise ParamsError("tags must be a non-empty list of tag names.")
        from opsportal.tagged_cache import UnknownTag, check_tags

        try:
            clean["tags"] = check_tags(tags)
        except UnknownTag as exc:
            raise ParamsError(str(exc)) from None
        return clean
    if not isinstance(pattern, str) or not pattern or len(pattern) > 200:
        raise ParamsError("pattern must be a key pattern (up to 200 characters).")
    if matches_everything(pattern) and not clean["dangerous"]:
        raise ParamsError(
            f"The pattern {pattern!r} matches every key: that is a flush. Add dangerous: true "
            "(the step then needs another person's approval) or use cache_flush."
        )
    clean["pattern"] = pattern
    return clean


def _invalidate_safety(params: dict, target: Target | None = None) -> str:
    pattern = params.get("pattern")
    if params.get("dangerous") or (pattern and matches_everything(pattern)):
        return Safety.DANGEROUS
    if pattern and target is not None:
        with _redis_errors_raised():
            client, full_key = _redis_client(target, 10.0)
            if why_dangerous(client, full_key, pattern, portal=target.is_portal):
                return Safety.DANGEROUS
    return Safety.CHANGE


def count_keys(client, match: str, *, stop_after: int) -> int | None:
    """Keys matching `match`, counted by SCAN; stops once past `stop_after` (the count is then
    stop_after + 1, or more). None when COUNT_MAX_CALLS calls did not finish the scan."""
    cursor, count = 0, 0
    for _ in range(COUNT_MAX_CALLS):
        cursor, keys = client.scan(cursor=cursor, match=match, count=SCAN_BATCH)
        count += len(keys)
        if count > stop_after or int(cursor) == 0:
            return count
    return None


def why_dangerous(client, full_key, pattern: str, *, portal: bool) -> str:
    """Why deleting the keys matching `pattern` is dangerous ("" when it is an ordinary change): it
    matches every key of the cache (the portal's own keys, or the target's database), or more than
    OPS_CACHE_INVALIDATE_MAX_KEYS, or too many to count."""
    limit = settings.OPS_CACHE_INVALIDATE_MAX_KEYS
    matched = count_keys(client, full_key(pattern), stop_after=limit)
    if matched is None:
        return f"matches too many keys to count ({COUNT_MAX_CALLS} SCAN calls did not finish)"
    if matched > limit:
        return f"matches more than {limit} keys (OPS_CACHE_INVALIDATE_MAX_KEYS)"
    if not matched:
        return ""
    # Matching no more than `limit`: compared with every key, counted up to limit + 1.
    total = count_keys(client, full_key("*"), stop_after=limit) if portal else client.dbsize()
    if total is not None and matched >= total:
        return f"matches every key of the cache ({matched})"
    return ""


def _redis_client(target: Target, timeout: float):
    if target.is_portal:
        from django.core.cache import cache

        if not hasattr(cache, "delete_pattern"):
            raise ActionError("The portal's cache is not Redis (REDIS_URL is unset): key patterns need Redis.")
        from django_redis import get_redis_connection

        return get_redis_connection("default"), cache.make_key
    try:
        client = redis.Redis.from_url(
            target.setting("redis_url"), socket_connect_timeout=min(timeout, 5), socket_timeout=timeout
        )
    except ValueError as exc:
        raise ActionError(f"The Redis URL is not usable: {exc}") from None
    return client, lambda key: key


def delete_pattern(client, pattern: str, *, dry_run: bool) -> int:
    """SCAN for `pattern` and DEL what it finds in batches; the count (found, when dry)."""
    batch, total = [], 0
    for key in client.scan_iter(match=pattern, count=SCAN_BATCH):
        batch.append(key)
        if len(batch) >= SCAN_BATCH:
            total += len(batch) if dry_run else client.delete(*batch)
            batch = []
    if batch:
        total += len(batch) if dry_run else client.delete(*batch)
    return total


@contextmanager
def _redis_errors_raised():
    """Redis failures as the action vocabulary: bad credentials 409, unreachable 503, other errors 409."""
    try:
        yield
    except redis.exceptions.AuthenticationError as exc:
        raise ActionError(f"Redis refused the credentials: {exc}") from None
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise TransientError(f"Could not reach Redis: {exc}") from None
    except redis.exceptions.RedisError as exc:
        raise ActionError(f"Redis answered with an error: {exc}") from None


def _redis_errors(fn):
    def wrapped(params: dict, target: Target, timeout: float) -> CheckResult:
        with _redis_errors_raised():
            return fn(params, target, timeout)

    return wrapped


@_redis_errors
def _invalidate(params: dict, target: Target, timeout: float) -> CheckResult:
    dry = params["dry_run"]
    if "tags" in params:
        if not target.is_portal:
            raise ActionError("Tags are the portal's own; give a key pattern for a target's Redis.")
        from opsportal import tagged_cache

        if dry:
            keys = {tag: tagged_cache.tagged_keys(tag) for tag in params["tags"]}
            summary = "Dry run: would delete " + ", ".join(f"{len(k)} key(s) tagged {t}" for t, k in keys.items())
            return CheckResult(CheckStatus.OK, summary, data={"dry_run": True, "keys": keys})
        counts = tagged_cache.invalidate(params["tags"])
        summary = "Invalidated " + ", ".join(f"{n} key(s) tagged {t}" for t, n in counts.items())
        return CheckResult(CheckStatus.OK, summary, {"deleted": sum(counts.values())}, summary, {"tags": counts})
    client, full_key = _redis_client(target, timeout)
    pattern = params["pattern"]
    # Unless a second person approved it (an approved request, a dangerous step), its effect decides.
    danger = "" if params["dangerous"] else why_dangerous(client, full_key, pattern, portal=target.is_portal)
    if danger and not dry:
        raise ActionError(
            f"Refused: the pattern {pattern!r} {danger}: in effect a flush, so another admin must approve it. "
            'Ask for it ("dangerous": true with a "reason", or POST /api/ops/requests), or mark the runbook '
            "step dangerous: true. Nothing was deleted."
        )
    count = delete_pattern(client, full_key(pattern), dry_run=dry)
    verb = "Dry run: would delete" if dry else "Deleted"
    summary = f"{verb} {count} key(s) matching {pattern!r}"
    if danger:
        summary += f"; it {danger}, so it needs another admin's approval"
    data = {"matched": count, "dry_run": dry, **({"dangerous": danger} if danger else {})}
    return CheckResult(CheckStatus.OK, summary, {"deleted": 0 if dry else count}, summary, data)


def _validate_dry(params: dict) -> dict:
    only(params, {"dry_run"})
    return {"dry_run": flag(params, "dry_run")}


def _warm(params: dict, target: Target, timeout: float) -> CheckResult:
    from django.utils import timezone

    from incidents.dashboard import cached_response_times

    pages = ["dashboard response times"]
    if params["dry_run"]:
        return CheckResult(
            CheckStatus.OK, f"Dry run: would render and cache: {', '.join(pages)}.", data={"dry_run": True}
        )
    cached_response_times(timezone.now())
    summary = f"Warmed: {', '.join(pages)}."
    return CheckResult(CheckStatus.OK, summary, {"pages": len(pages)}, summary)


@_redis_errors
def _flush(params: dict, target: Target, timeout: float) -> CheckResult:
    dry = params["dry_run"]
    if target.is_portal:
        from django.core.cache import cache

        if not hasattr(cache, "delete_pattern"):
            if not dry:
                cache.clear()
            return CheckResult(
                CheckStatus.OK, ("Dry run: would clear" if dry else "Cleared") + " the portal's file cache."
            )
        client, full_key = _redis_client(target, timeout)
        count = delete_pattern(client, full_key("*"), dry_run=dry)
    else:
        client, _ = _redis_client(target, timeout)
        count = client.dbsize()
        if not dry:
            client.flushdb()
    summary = f"{'Dry run: would delete' if dry else 'Flushed'} {count} key(s)"
    return CheckResult(CheckStatus.OK, summary, {"deleted": 0 if dry else count}, summary, {"dry_run": dry})


def _describe(params: dict) -> str:
    what = ", ".join(params.get("tags") or []) or params.get("pattern", "")
    return (what + (" (dry run)" if params.get("dry_run") else "")).strip()


# A service's Redis URL, or the portal's own cache; warming is of the portal's own pages.
REDIS = {"setting": "redis_url", "portal": True}
ACTIONS = [
    Action(
        "cache_invalidate", "Invalidate cache", _invalidate, _validate_invalidate, _describe, Safety.CHANGE,
        _invalidate_safety, **REDIS,
    ),
    Action("cache_warm", "Warm the cache", _warm, _validate_dry, _describe, Safety.CHANGE, portal=True),
    Action("cache_flush", "Flush the cache", _flush, _validate_dry, _describe, Safety.DANGEROUS, **REDIS),
]  # fmt: skip
