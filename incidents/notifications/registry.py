"""What can be announced (events) and how it is written for a channel (formats).

Each app registers the events it owns, and a format is one module under
incidents/notifications/formats/ registered with one line. Model fields and forms take their
choices from here through callables, so adding either needs no migration. This module imports no
model: models import it.
"""

from collections.abc import Callable
from dataclasses import dataclass

EVENT_MAX_LENGTH = 32  # WebhookDelivery.event
FORMAT_MAX_LENGTH = 8  # WebhookEndpoint.format


@dataclass(frozen=True)
class Notification:
    """One announcement, before a format writes it for a channel.

    `data` is the generic JSON body (event, text, occurred_at and what it is about); `url` and
    `reference` name the page to open; `summary` is the longer text e-mail adds below the link.
    """

    event: str
    text: str
    data: dict
    url: str
    reference: str
    summary: str = ""


@dataclass(frozen=True)
class Format:
    name: str
    label: str
    render: Callable[[Notification], dict]
    webhook: bool  # offered as a webhook endpoint's format (e-mail is not)


_events: dict[str, str] = {}
_formats: dict[str, Format] = {}


def register_event(value: str, label: str) -> str:
    """Makes `value` an event endpoints can subscribe to; returns it, for use as a constant."""
    if len(value) > EVENT_MAX_LENGTH:
        raise ValueError(f"Event {value!r} is longer than {EVENT_MAX_LENGTH} characters.")
    if _events.get(value, label) != label:
        raise ValueError(f"Event {value!r} is already registered as {_events[value]!r}.")
    _events[value] = label
    return value


def register_format(name: str, label: str, render: Callable[[Notification], dict], *, webhook: bool = True) -> Format:
    if len(name) > FORMAT_MAX_LENGTH:
        raise ValueError(f"Format {name!r} is longer than {FORMAT_MAX_LENGTH} characters.")
    if name in _formats and _formats[name].render is not render:
        raise ValueError(f"Format {name!r} is already registered.")
    _formats[name] = Format(name, label, render, webhook)
    return _formats[name]


def event_choices() -> list[tuple[str, str]]:
    """Every registered event, in registration order (the admin's checkboxes)."""
    return list(_events.items())


def event_values() -> list[str]:
    return list(_events)


def webhook_format_choices() -> list[tuple[str, str]]:
    return [(f.name, f.label) for f in _formats.values() if f.webhook]


def get_format(name: str) -> Format:
    """KeyError for a name nobody registered."""
    return _formats[name]
