"""A small tagged cache: each cached value names the tags it depends on, and invalidating a tag
deletes exactly the keys cached under it (ops action `cache_invalidate`, POST /api/ops/cache/invalidate).

With Redis each tag is a set of full cache keys (SADD on write; SMEMBERS then DEL in batches on
invalidation). The file cache of the embedded setup keeps the same index as a cached list.
"""

from collections.abc import Callable, Iterable

from django.core.cache import cache

# The tags the portal caches under, and what they hold; anything else is refused as unknown.
TAGS = {
    "dashboard": "The dashboard's MTTA/MTTR figures over 7, 30 and 90 days.",
}
TAG_TTL = 24 * 3600
DELETE_BATCH = 500


class UnknownTag(ValueError):
    pass


def _index_key(tag: str) -> str:
    return f"tag:{tag}"


def _redis():
    if hasattr(cache, "delete_pattern"):  # django-redis
        from django_redis import get_redis_connection

        return get_redis_connection("default")
    return None


def check_tags(tags: Iterable[str]) -> list[str]:
    tags = list(dict.fromkeys(tags))
    unknown = [t for t in tags if t not in TAGS]
    if unknown:
        raise UnknownTag(f"Unknown cache tag {', '.join(map(repr, unknown))}; known tags: {', '.join(sorted(TAGS))}.")
    return tags


def set_tagged(key: str, value, *, tags: Iterable[str], timeout: int) -> None:
    tags = check_tags(tags)
    cache.set(key, value, timeout)
    client = _redis()
    for tag in tags:
        index = cache.make_key(_index_key(tag))
        if client is not None:
            pipe = client.pipeline()
            pipe.sadd(index, cache.make_key(key))
            pipe.expire(index, TAG_TTL)
            pipe.execute()
        else:
            keys = set(cache.get(_index_key(tag)) or ())
            keys.add(key)
            cache.set(_index_key(tag), sorted(keys), TAG_TTL)


def get_or_set_tagged(key: str, make: Callable[[], object], *, tags: Iterable[str], timeout: int):
    value = cache.get(key)
    if value is None:
        value = make()
        set_tagged(key, value, tags=tags, timeout=timeout)
    return value


def tagged_keys(tag: str) -> list[str]:
    """The full cache keys under `tag` (what an invalidation would delete)."""
    client = _redis()
    if client is not None:
        return sorted(k.decode() for k in client.smembers(cache.make_key(_index_key(tag))))
    return [cache.make_key(k) for k in cache.get(_index_key(tag)) or ()]


def invalidate(tags: Iterable[str]) -> dict[str, int]:
    """Deletes the keys cached under each tag; returns how many keys each tag had."""
    counts = {}
    client = _redis()
    for tag in check_tags(tags):
        if client is not None:
            index = cache.make_key(_index_key(tag))
            keys = list(client.smembers(index))
            for start in range(0, len(keys), DELETE_BATCH):
                client.delete(*keys[start : start + DELETE_BATCH])
            client.delete(index)
        else:
            keys = list(cache.get(_index_key(tag)) or ())
            cache.delete_many(keys)
            cache.delete(_index_key(tag))
        counts[tag] = len(keys)
    return counts
