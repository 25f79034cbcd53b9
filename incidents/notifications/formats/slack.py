"""Slack's incoming webhooks (and Mattermost, Rocket.Chat): {"text"} with a <url|label> link."""

from incidents.notifications.registry import Notification


def render(notification: Notification) -> dict:
    return {"text": f"{_escape(notification.text)} <{notification.url}|Open {notification.reference}>"}


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
