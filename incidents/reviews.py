"""Reviews across models: the markdown export, the incident statistics and their SVG charts."""

import math
from collections import defaultdict
from datetime import datetime, timedelta
from html import escape

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


def export_markdown(review: PostIncidentReview) -> str:
    incident = review.incident
    local = timezone.localtime
    facing = {None: "unknown", True: "yes", False: "no"}[review.customer_facing]
    lines = [
        f"# Post-incident review: {incident.reference} — {incident.title}",
        "",
        f"- Severity: {incident.severity} ({incident.priority})",
        f"- State: {review.get_state_display()}",
        f"- Owner: {review.owner.get_username() if review.owner else '—'}",
        f"- Due: {local(review.due_at):%Y-%m-%d %H:%M %Z}{' (overdue)' if review.overdue else ''}",
        f"- Customer-facing: {facing}",
        f"- Services: {', '.join(s.name for s in incident.services.all()) or '—'}",
        "",
        "## Times",
        "",
        "| | Computed | Used | Reason for override |",
        "| --- | --- | --- | --- |",
    ]
    for metric in review.times().values():
        lines.append(
            f"| {metric['label']} | {format_duration(metric['computed'])} | {format_duration(metric['seconds'])} "
            f"| {metric['reason'] or ''} |"
        )
    sections = [
        ("Summary", review.summary),
        ("Impact", review.impact),
        ("Root cause", review.root_cause),
        ("Contributing factors", review.contributing_factors),
        ("Detection", review.detection),
        ("What went well", review.went_well),
        ("What went poorly", review.went_poorly),
        ("Where we got lucky", review.lucky),
        ("Lessons learned", review.lessons),
    ]
    for title, text in sections:
        lines += ["", f"## {title}", "", text.strip() or "_(empty)_"]
    lines += ["", "## Key moments", ""]
    moments = list(review.key_moments())
    for event in moments:
        who = event.author.get_username() if event.author else "Ops Portal"
        body = " ".join(event.body.split())
        lines.append(f"- **{local(event.occurred_at):%Y-%m-%d %H:%M %Z}** ({event.get_kind_display()}, {who}): {body}")
    if not moments:
        lines.append("_(no pinned timeline entries)_")
    lines += ["", "## Action items", ""]
    items = list(review.action_items.select_related("owner"))
    if items:
        lines += ["| Title | Kind | Owner | Due | Status |", "| --- | --- | --- | --- | --- |"]
        for item in items:
            status = item.get_status_display() + (f": {item.reason}" if item.reason else "")
            owner = item.owner.get_username() if item.owner else "—"
            lines.append(f"| {item.title} | {item.get_kind_display()} | {owner} | {item.due_date or '—'} | {status} |")
    if review.no_action_needed:
        lines += ["", f"No action needed: {review.no_action_reason}"]
    if not items and not review.no_action_needed:
        lines.append("_(none yet)_")
    return "\n".join(lines) + "\n"


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


SEVERITY_COLOURS = {"SEV1": "#c0392b", "SEV2": "#d68910", "SEV3": "#b7950b", "SEV4": "#5d6d7e"}


def line_chart_svg(title: str, weeks: list[str], by_severity: dict, width: int = 520, height: int = 220) -> str:
    """Mean (solid) and p90 (dashed) per week, one colour per severity; hours on the y axis."""
    left, right, top, bottom = 44, 10, 26, 34
    values = [p[key] for points in by_severity.values() for p in points for key in ("mean", "p90") if p[key]]
    top_value = max(values, default=3600) / 3600
    scale_max = max(1.0, math.ceil(top_value))
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(i: int) -> float:
        return left + (plot_w * i / max(1, len(weeks) - 1))

    def y(seconds: float) -> float:
        return top + plot_h - plot_h * (seconds / 3600) / scale_max

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" class="chart">',
        f'<text x="{left}" y="16" class="chart-title">{escape(title)}</text>',
    ]
    for step in range(5):
        value = scale_max * step / 4
        ypos = y(value * 3600)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{ypos:.1f}" y2="{ypos:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{ypos + 4:.1f}" text-anchor="end" class="tick">{value:g} h</text>')
    for i, week in enumerate(weeks):
        if i % 2 == 0:
            parts.append(f'<text x="{x(i):.1f}" y="{height - 12}" text-anchor="middle" class="tick">{week[5:]}</text>')
    for severity, points in by_severity.items():
        colour = SEVERITY_COLOURS[severity]
        for key, dash in (("mean", ""), ("p90", ' stroke-dasharray="4 3"')):
            coords = [(x(i), y(p[key])) for i, p in enumerate(points) if p[key] is not None]
            if len(coords) > 1:
                path = " ".join(f"{a:.1f},{b:.1f}" for a, b in coords)
                parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
            for a, b in coords:
                parts.append(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.5" fill="{colour}"/>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart_svg(title: str, bars: list[tuple[str, int, str]], width: int = 320, height: int = 160) -> str:
    """Horizontal bars: (label, value, colour)."""
    top, row = 28, 26
    largest = max((v for _, v, _ in bars), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" class="chart">',
        f'<text x="0" y="16" class="chart-title">{escape(title)}</text>',
    ]
    for i, (label, value, colour) in enumerate(bars):
        ypos = top + i * row
        length = (width - 150) * value / largest
        parts.append(f'<text x="0" y="{ypos + 13}" class="tick">{escape(label)}</text>')
        parts.append(f'<rect x="110" y="{ypos}" width="{length:.1f}" height="18" fill="{colour}"/>')
        parts.append(f'<text x="{114 + length:.1f}" y="{ypos + 13}" class="tick">{value}</text>')
    parts.append("</svg>")
    return "".join(parts)


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
