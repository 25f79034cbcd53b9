"""Generic JSON: the announcement's data as it is (event, text, occurred_at, what it is about)."""

from incidents.notifications.registry import Notification


def render(notification: Notification) -> dict:
    return notification.data
