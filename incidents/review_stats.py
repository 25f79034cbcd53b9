"""Review figures: durations as people read them, incident statistics over weeks, reviews and
action items due."""

import math
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from incidents.choices import ActionItemStatus, ReviewState, Severity
from incidents.models import ActionItem, Incident, PostIncidentReview


def format_duration(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [(days, "d"), (hours, "h"), (minutes, "min")]
    text = " ".join(f"{value} {unit}" for value, unit in parts if value)
    return text or f"{secs} s"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    rank = max(0, math.ceil(fraction * len(ordered)) - 1)
    return ordered[rank]


def _week_start(moment: datetime) -> str:
    local = timezone.localtime(moment).date()
    return (local - timedelta(days=local.weekday())).isoformat()


def incident_stats(days: int = 90, now: datetime | None = None) -> dict:
    """Mean and p90 time to acknowledge and to resolve, by severity per week; reviews; action items."""
    now = now or timezone.now()
    since = now - timedelta(days=days)
    # A person's first move out of triggered counts as the acknowledgement, as on the dashboard.
    rows = (
        Incident.objects.filter(detected_at__gte=since)
        .annotate(responded_at=Coalesce("acknowledged_at", "sla__acknowledged_at"))
        .values_list("severity", "detected_at", "responded_at", "resolved_at")
    )
    samples = {"acknowledge": defaultdict(list), "resolve": defaultdict(list)}
    for severity, detected, acknowledged, resolved in rows:
        week = _week_start(detected)
        if acknowledged:
            samples["acknowledge"][(severity, week)].append((acknowledged - detected).total_seconds())
        if resolved:
            samples["resolve"][(severity, week)].append((resolved - detected).total_seconds())
    weeks = sorted({_week_start(since + timedelta(days=d)) for d in range(0, days + 1, 7)} | {_week_start(now)})
    series = {}
    for metric, buckets in samples.items():
        series[metric] = {
            severity: [
                {
                    "week": week,
                    "count": len(buckets.get((severity, week), [])),
                    "mean": round(sum(v) / len(v)) if (v := buckets.get((severity, week))) else None,
                    "p90": round(_percentile(v, 0.9)) if v else None,
                }
                for week in weeks
            ]
            for severity in Severity.values
        }
    reviews = PostIncidentReview.objects.filter(incident__resolved_at__gte=since).aggregate(
        published_on_time=Count("pk", filter=Q(state=ReviewState.PUBLISHED, published_at__lte=F("due_at"))),
        published_late=Count("pk", filter=Q(state=ReviewState.PUBLISHED, published_at__gt=F("due_at"))),
        unpublished_overdue=Count("pk", filter=~Q(state=ReviewState.PUBLISHED) & Q(due_at__lt=now)),
        unpublished_in_time=Count("pk", filter=~Q(state=ReviewState.PUBLISHED) & Q(due_at__gte=now)),
    )
    items = ActionItem.objects.filter(review__incident__resolved_at__gte=since).aggregate(
        open=Count("pk", filter=Q(status=ActionItemStatus.OPEN)),
        open_past_due=Count("pk", filter=Q(status=ActionItemStatus.OPEN, due_date__lt=timezone.localdate(now))),
        done=Count("pk", filter=Q(status=ActionItemStatus.DONE)),
        wont_do=Count("pk", filter=Q(status=ActionItemStatus.WONT_DO)),
    )
    return {"days": days, "weeks": weeks, "time_to": series, "reviews": reviews, "action_items": items}


def due_context(now=None) -> dict:
    """Reviews due soon or overdue, and open action items past due: for the reviews page and the dashboard."""
    now = now or timezone.now()
    unpublished = PostIncidentReview.objects.unpublished().select_related("incident", "owner")
    return {
        "overdue_reviews": unpublished.filter(due_at__lt=now),
        "due_soon_reviews": unpublished.filter(
            due_at__gte=now, due_at__lt=now + timedelta(hours=settings.PIR_DUE_SOON_HOURS)
        ),
        "past_due_items": ActionItem.objects.past_due().select_related("owner", "review__incident")[:50],
    }
