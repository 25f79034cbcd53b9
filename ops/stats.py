"""What the ops console and API show about the portal's cache and workers."""

from pathlib import Path

from django.core.cache import cache
from kombu.exceptions import OperationalError as KombuOperationalError

from opsportal import tagged_cache
from runbooks.actions import TransientError

INSPECT_TIMEOUT = 1.5


def cache_stats() -> dict:
    tagged = {tag: len(tagged_cache.tagged_keys(tag)) for tag in tagged_cache.TAGS}
    if not hasattr(cache, "delete_pattern"):
        location = Path(getattr(cache, "_dir", ""))
        keys = sum(1 for _ in location.glob("*.djcache")) if location.is_dir() else 0
        return {
            "backend": "file",
            "available": True,
            "keys": keys,
            "hit_rate": None,
            "used_memory": None,
            "tags": tagged,
        }
    from django_redis import get_redis_connection

    try:
        client = get_redis_connection("default")
        stats, memory, keys = client.info("stats"), client.info("memory"), client.dbsize()
    except Exception as exc:  # noqa: BLE001 - shown as unavailable, never a 500
        return {"backend": "redis", "available": False, "error": f"{type(exc).__name__}: {exc}", "tags": tagged}
    hits, misses = stats.get("keyspace_hits", 0), stats.get("keyspace_misses", 0)
    return {
        "backend": "redis",
        "available": True,
        "keys": keys,
        "hit_rate": round(100 * hits / (hits + misses), 1) if hits + misses else None,
        "used_memory": memory.get("used_memory_human"),
        "max_memory": memory.get("maxmemory_human"),
        "tags": tagged,
    }


def pending_tasks() -> list[dict]:
    """Tasks the workers hold: running, prefetched (reserved) and scheduled for later (ETA)."""
    from opsportal.celery import app

    try:
        inspect = app.control.inspect(timeout=INSPECT_TIMEOUT)
        found = {"active": inspect.active(), "reserved": inspect.reserved(), "scheduled": inspect.scheduled()}
    except (KombuOperationalError, OSError) as exc:
        raise TransientError(f"The broker is not reachable: {type(exc).__name__}: {exc}") from None
    tasks = []
    for state, replies in found.items():
        for worker, items in (replies or {}).items():
            for item in items:
                task = item.get("request", item)
                tasks.append(
                    {
                        "id": task.get("id"),
                        "name": task.get("name") or task.get("type"),
                        "queue": (task.get("delivery_info") or {}).get("routing_key"),
                        "state": state,
                        "worker": worker,
                        "eta": item.get("eta"),
                    }
                )
    return tasks
