"""Filters for response clocks: "12m 03s", "overdue by 4m"."""

from datetime import datetime

from django import template
from django.utils import timezone

register = template.Library()


def _span(seconds: int) -> str:
    seconds = abs(int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 24:
        return f"{hours // 24}d {hours % 24}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s"


@register.filter
def remaining(due: datetime | None) -> str:
    """Time left until `due`, or how long it is overdue."""
    if due is None:
        return ""
    seconds = (due - timezone.now()).total_seconds()
    return f"{_span(seconds)} left" if seconds > 0 else f"overdue by {_span(seconds)}"


@register.filter
def took(stopped: datetime | None, started: datetime | None) -> str:
    if stopped is None or started is None:
        return ""
    return _span((stopped - started).total_seconds())


@register.filter
def duration(value) -> str:
    """A timedelta (e.g. MTTA) as "7m 12s"; em dash when there is none."""
    if value is None:
        return "—"
    return _span(value.total_seconds())
