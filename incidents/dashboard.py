"""The home page's numbers: open incidents by severity with their clocks, alerts firing now,
and MTTA/MTTR over 7/30/90 days. Each section is one or two aggregate queries, whatever the
number of incidents; each has its own partial under templates/incidents/partials/dashboard/."""

from datetime import datetime, timedelta

from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Max, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from incidents.choices import PagePurpose, Severity
from incidents.models import Alert, Incident, PageState, Schedule
from incidents.oncall import on_call_now, with_rotations
from incidents.review_stats import due_context
from incidents.schedule_calendar import next_handoffs
from opsportal.tagged_cache import get_or_set_tagged

WINDOWS = (7, 30, 90)
OPEN_LIMIT = 50
FIRING_LIMIT = 50
SCHEDULES_LIMIT = 50


def open_incidents(now: datetime) -> dict:
    counts = dict(Incident.objects.open().values_list("severity").annotate(n=Count("id")).order_by())
    incidents = list(
        Incident.objects.open()
        .select_related("sla", "commander")
        .prefetch_related("services")
        .order_by("severity", "detected_at")[:OPEN_LIMIT]
    )
    breached = sum(1 for i in incidents if _state(i, now) == "breached")
    return {
        "by_severity": [(s.value, s.priority, counts.get(s.value, 0)) for s in Severity],
        "open_incidents": incidents,
        "open_total": sum(counts.values()),
        "breached_shown": breached,
        "open_limit": OPEN_LIMIT,
    }


def _state(incident: Incident, now: datetime) -> str:
    clock = getattr(incident, "sla", None)
    if clock is None:
        return "none"
    state = clock.state(now)
    states = {c["state"] for c in (state["ack"], state["resolve"]) if c}
    return "breached" if "breached" in states else ("running" if "running" in states else "met")


def paging(now: datetime) -> dict:
    """Who each schedule puts on call now (three queries for any number of schedules) and the open
    incidents a level of which reached nobody."""
    schedules = with_rotations(Schedule.objects.all(), now, now + timedelta(microseconds=1))[:SCHEDULES_LIMIT]
    unpaged = (
        Incident.objects.open()
        .filter(pages__state=PageState.UNROUTED, pages__purpose=PagePurpose.ESCALATION)
        .annotate(
            unpaged_level=Max(
                "pages__level", filter=Q(pages__state=PageState.UNROUTED, pages__purpose=PagePurpose.ESCALATION)
            )
        )
        .order_by("severity", "detected_at")[:OPEN_LIMIT]
    )
    return {"on_call": on_call_now(schedules, now), "unpaged_incidents": list(unpaged)}


def firing_alerts() -> dict:
    firing = Alert.objects.firing()
    return {
        "firing_alerts": list(firing.select_related("incident", "integration")[:FIRING_LIMIT]),
        "firing_total": firing.count(),
    }


def response_times(now: datetime) -> list[dict]:
    """MTTA (detection → a person's first response) and MTTR (detection → resolution) per window.

    A person who moves an incident straight from triggered to investigating leaves no
    acknowledged_at; their move is in sla.acknowledged_at. Incidents whose alerts resolved
    before anyone responded have neither and are not in MTTA. Test incidents count in neither.
    """
    acknowledged = Coalesce("sla__acknowledged_at", "acknowledged_at")
    to_ack = ExpressionWrapper(acknowledged - F("detected_at"), output_field=DurationField())
    to_resolve = ExpressionWrapper(
        Coalesce("resolved_at", "closed_at") - F("detected_at"), output_field=DurationField()
    )
    aggregates = {}
    for days in WINDOWS:
        since = Q(detected_at__gte=now - timedelta(days=days))
        aggregates[f"mtta_{days}"] = Avg(
            to_ack, filter=since & (Q(sla__acknowledged_at__isnull=False) | Q(acknowledged_at__isnull=False))
        )
        aggregates[f"mttr_{days}"] = Avg(
            to_resolve, filter=since & (Q(resolved_at__isnull=False) | Q(closed_at__isnull=False))
        )
        aggregates[f"count_{days}"] = Count("id", filter=since)
    # Test incidents (a test alert, resolved by itself in a minute) would flatter MTTR.
    values = Incident.objects.filter(is_test=False).aggregate(**aggregates)
    return [
        {"days": d, "mtta": values[f"mtta_{d}"], "mttr": values[f"mttr_{d}"], "count": values[f"count_{d}"]}
        for d in WINDOWS
    ]


RESPONSE_TIMES_TTL = 300  # seconds; a bound on staleness should an invalidation be missed


def cached_response_times(now: datetime) -> list[dict]:
    """The 90-day aggregates are the dashboard's costliest query: cached under the `dashboard` tag,
    which any saved incident or response clock invalidates (ops/signals.py)."""
    return get_or_set_tagged(
        "dashboard:response_times", lambda: response_times(now), tags=["dashboard"], timeout=RESPONSE_TIMES_TTL
    )


def context() -> dict:
    now = timezone.now()
    return {
        "now": now,
        **open_incidents(now),
        **paging(now),
        "next_handoffs": next_handoffs(now),
        **firing_alerts(),
        "response_times": cached_response_times(now),
        **due_context(now),
    }
