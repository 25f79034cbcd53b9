"""A post-incident review as a markdown document, for pasting into a wiki."""

from django.utils import timezone

from incidents.models import PostIncidentReview
from incidents.review_stats import format_duration


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
