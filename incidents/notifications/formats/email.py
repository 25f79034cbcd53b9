"""E-mail to escalation contacts: the text as subject, then the link and the summary.

The subject is one line whatever the text holds: an alert summary with a newline would otherwise
make the header invalid (Django refuses it with BadHeaderError) and the page would never leave.
"""

from incidents.notifications.registry import Notification

SUBJECT_MAX = 180


def single_line(text: str, limit: int = SUBJECT_MAX) -> str:
    """`text` as one header-safe line: every run of whitespace (newlines, tabs, U+2028…) becomes one
    space, and a text longer than `limit` ends with an ellipsis."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def render(notification: Notification) -> dict:
    body = f"{notification.text}\n\n{notification.url}\n\n{notification.summary}".strip() + "\n"
    return {"subject": single_line(notification.text), "body": body}
