"""Alert sources, one module each, registered here by slug.

The slug is an Integration's `kind` and the `<kind>` of its intake URL; the kind's choices
(model, admin, forms) come from this registry. A new source is a module that defines a
`Source` (see base.py) and one `register(...)` line below.
"""

from incidents.alerting.sources import alertmanager, grafana
from incidents.alerting.sources.base import (
    TEST_LABEL,
    Batch,
    NormalisedAlert,
    PayloadError,
    Source,
    TestAlert,
    is_test_alert,
    read_json,
)

__all__ = [
    "TEST_LABEL",
    "Batch",
    "NormalisedAlert",
    "PayloadError",
    "Source",
    "TestAlert",
    "choices",
    "get",
    "is_test_alert",
    "read_json",
    "register",
    "slugs",
    "unregister",
]

_registry: dict[str, Source] = {}


def register(source: Source) -> Source:
    if len(source.slug) > 16:
        raise ValueError(f"source slug {source.slug!r} is longer than Integration.kind allows (16).")
    if _registry.get(source.slug, source) is not source:
        raise ValueError(f"another alert source is registered as {source.slug!r}.")
    _registry[source.slug] = source
    return source


def unregister(slug: str) -> None:
    _registry.pop(slug, None)


def get(slug: str) -> Source | None:
    return _registry.get(slug)


def slugs() -> list[str]:
    return list(_registry)


def choices() -> list[tuple[str, str]]:
    """Integration.kind's choices (a callable, so registering a source needs no migration)."""
    return [(source.slug, source.label) for source in _registry.values()]


register(alertmanager.SOURCE)
register(grafana.SOURCE)
