"""E-mail to escalation contacts: the text as subject, then the link and the summary."""

from incidents.notifications.registry import Notification

SUBJECT_MAX = 180


def render(notification: Notification) -> dict:
    body = f"{notification.text}\n\n{notification.url}\n\n{notification.summary}".strip() + "\n"
    return {"subject": notification.text[:SUBJECT_MAX], "body": body}
