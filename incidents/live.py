"""The live incident page: a cheap "changed since" check that open pages poll.

Every part of the incident page (header, timeline, alerts, and what higher apps add, such as
the runs card) has a fingerprint: a few columns that change whenever what the part shows
changes. `fingerprints(pk)` reads all of them in ONE query (subqueries on indexed columns),
whatever the size of the incident; an idle page costs that query plus the session and user
lookups of any signed-in request. The poll answers 204 when nothing changed; otherwise it
names the changed parts in an `HX-Trigger` header and each part fetches itself.

A higher app adds a part with `register_part(name, expressions)` from its AppConfig.ready();
`expressions` maps annotation names to expressions on Incident (use OuterRef("pk")).
"""

import hashlib
from collections.abc import Callable

from django.db.models import Expression, F, Max, OuterRef, Subquery

from incidents.models import Alert, Incident, TimelineEvent

_parts: dict[str, Callable[[], dict[str, Expression]]] = {}


def register_part(name: str, expressions: Callable[[], dict[str, Expression]]) -> None:
    _parts[name] = expressions


def latest(queryset, field: str, incident: str = "incident") -> Subquery:
    """The greatest `field` among the incident's rows, as a subquery of the fingerprint query."""
    return Subquery(
        queryset.filter(**{incident: OuterRef("pk")}).order_by().values(incident).annotate(m=Max(field)).values("m")[:1]
    )


register_part(
    "header",
    lambda: {
        "updated": F("updated_at"),
        "sla_level": F("sla__level"),
        "sla_escalated": F("sla__escalated_at"),
        "sla_ack": F("sla__ack_breached_at"),
        "sla_resolve": F("sla__resolve_breached_at"),
        "review": F("review__updated_at"),
    },
)
register_part("timeline", lambda: {"events": latest(TimelineEvent.objects, "updated_at")})
register_part(
    "alerts",
    lambda: {"alert_seen": latest(Alert.objects, "last_received_at"), "alert_ids": latest(Alert.objects, "id")},
)


def fingerprints(incident_pk: int) -> dict[str, str] | None:
    """{part: short hash} for every part, in one query; None if the incident is gone."""
    names: dict[str, list[str]] = {}
    annotations: dict[str, Expression] = {}
    for part, expressions in _parts.items():
        for key, expression in expressions().items():
            alias = f"live_{part}_{key}"
            annotations[alias] = expression
            names.setdefault(part, []).append(alias)
    row = Incident.objects.filter(pk=incident_pk).annotate(**annotations).values(*annotations).first()
    if row is None:
        return None
    return {
        part: hashlib.blake2s(repr([row[a] for a in aliases]).encode(), digest_size=6).hexdigest()
        for part, aliases in names.items()
    }


def encode(prints: dict[str, str]) -> str:
    return ".".join(f"{part}-{value}" for part, value in sorted(prints.items()))


def changed(since: str, prints: dict[str, str]) -> list[str]:
    """The parts whose fingerprint differs from the token the page holds (all of them for a bad token)."""
    seen = dict(item.split("-", 1) for item in since.split(".") if "-" in item)
    return sorted(part for part, value in prints.items() if seen.get(part) != value)
