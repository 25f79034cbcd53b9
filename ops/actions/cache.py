"""Cache remediation: invalidate by tag (the portal's tagged cache) or by key pattern (SCAN + DEL in
batches, never KEYS), warm the portal's hot pages, flush. A service's Redis URL, or the portal's cache
when there is no target; a flush of the portal's cache deletes only its own keys (the broker may share the database)."""

import re

import redis

from runbooks.actions.base import Action, ActionError, CheckResult, ParamsError, Target, TransientError, flag, only
from runbooks.choices import CheckStatus, Safety

SCAN_BATCH = 500
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


def _invalidate_safety(params: dict) -> str:
    pattern = params.get("pattern")
    return Safety.DANGEROUS if params.get("dangerous") or (pattern and matches_everything(pattern)) else Safety.CHANGE


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


def _redis_errors(fn):
    def wrapped(params: dict, target: Target, timeout: float) -> CheckResult:
        try:
            return fn(params, target, timeout)
        except redis.exceptions.AuthenticationError as exc:
            raise ActionError(f"Redis refused the credentials: {exc}") from None
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise TransientError(f"Could not reach Redis: {exc}") from None
        except redis.exceptions.RedisError as exc:
            raise ActionError(f"Redis answered with an error: {exc}") from None

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
    count = delete_pattern(client, full_key(params["pattern"]), dry_run=dry)
    verb = "Dry run: would delete" if dry else "Deleted"
    summary = f"{verb} {count} key(s) matching {params['pattern']!r}"
    return CheckResult(
        CheckStatus.OK, summary, {"deleted": 0 if dry else count}, summary, {"matched": count, "dry_run": dry}
    )


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
