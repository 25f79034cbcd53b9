"""The timeline entries of applied alerts: one entry per alert, or one grouped entry when many
alerts of one delivery changed the same way (a storm writes a line, not a page of them; the
alerts themselves stay listed on the incident)."""

from collections import defaultdict
from datetime import datetime

from incidents.choices import EventKind
from incidents.models import Alert, Incident, TimelineEvent

GROUP_OVER = 5  # more alerts than this changing the same way in one delivery share one entry
NAMED_IN_GROUP = 3  # how many of them the grouped entry names


def record(events: list[tuple[Incident, Alert, str, datetime]]) -> None:
    """Write the entries of (incident, alert row, what happened, when) in the order they came."""
    grouped: dict[tuple[int, str], list] = defaultdict(list)
    for incident, row, what, at in events:
        grouped[(incident.pk, what)].append((incident, row, at))
    for (_, what), items in grouped.items():
        if len(items) > GROUP_OVER:
            incident = items[0][0]
            at = max(at for _, _, at in items)
            TimelineEvent.record(
                incident, kind=EventKind.ALERT, body=describe_many([r for _, r, _ in items], what), occurred_at=at
            )
            continue
        for incident, row, at in items:
            TimelineEvent.record(incident, kind=EventKind.ALERT, body=describe(row, what), occurred_at=at)


def describe_many(rows: list[Alert], what: str) -> str:
    """ "12 alerts firing: `A instance=a`, `A instance=b`, `A instance=c` … and 9 more"."""
    common = dict(rows[0].labels)
    for row in rows[1:]:
        common = {k: v for k, v in common.items() if row.labels.get(k) == v}
    names = [_code(_name(row, common)) for row in rows[:NAMED_IN_GROUP]]
    more = len(rows) - len(names)
    listed = ", ".join(names) + (f" … and {more} more" if more else "")
    return f"**{len(rows)} alerts {what.lower()}**: {listed}\n\nThe alerts are listed on the incident."


def _name(row: Alert, common: dict) -> str:
    differing = " ".join(f"{k}={v}" for k, v in sorted(row.labels.items()) if k not in common and k != "alertname")
    return f"{row.alertname or row.fingerprint} {differing}".strip()


def _event(incident: Incident, row: Alert, what: str, at: datetime) -> None:
    TimelineEvent.record(incident, kind=EventKind.ALERT, body=describe(row, what), occurred_at=at)


def _code(value: str) -> str:
    return "`" + str(value).replace("`", "'").replace("\n", " ")[:300] + "`"


def link(label: str, url: str | None) -> str:
    return f"[{label}]({url})" if url and url.lower().startswith(("http://", "https://")) else label


def describe(row: Alert, what: str) -> str:
    """The markdown of an alert's timeline entry: what a responder needs at a glance."""
    head = f"**{what}**: {_code(row.alertname or row.fingerprint)}"
    if row.severity_label:
        head += f" · severity {_code(row.severity_label)}"
    lines = [head]
    summary = row.annotations.get("summary", "").strip()
    if summary:
        lines.append(f"> {summary[:500]}")
    description = row.annotations.get("description", "").strip()
    if description and what != "Resolved":
        lines.append(description[:2000])
    skip = {"alertname", "severity"}
    labels = ", ".join(_code(f"{k}={v}") for k, v in sorted(row.labels.items()) if k not in skip)
    if labels:
        lines.append(f"Labels: {labels}")
    if row.values:
        lines.append("Values: " + ", ".join(_code(f"{k}={v}") for k, v in sorted(row.values.items())))
    links = [link(role.capitalize(), url) for role, url in row.links.items()]
    if links:
        lines.append(" · ".join(links))
    return "\n\n".join(lines)
