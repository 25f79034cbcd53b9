"""One JSON object per line on stdout, with the request's context and no personal data.

The same formatter serves runserver, gunicorn (gunicorn.conf.py) and Celery (opsportal/celery.py),
so `jq` works on every process's output. Every record carries `request_id` (from X-Request-ID or
generated; a Celery task inherits the id of the request that enqueued it), and inside a request
also `method`, `route` and `user_id`.

Redaction runs on the finished record, whatever logged it: values under sensitive keys
(password, token, secret, cookie, authorization, email, phone...) are replaced, and e-mail
addresses, phone numbers, bearer/token credentials and cookie or password assignments inside any
text (messages, tracebacks, extra fields) are masked. So are the credentials that travel in URL
paths, wherever a path is logged (the request line's `path`, `django.request` warnings, a
traceback): the token of an alert-intake URL (`/api/integrations/<kind>/<token>/`) and the token
of a password-reset link (`/accounts/reset/<uid>/<token>/`).
"""

import contextvars
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from django.utils.functional import empty
from pythonjsonlogger.json import JsonFormatter as BaseJsonFormatter

REDACTED = "[redacted]"
# The context of the request (or task) being handled by this thread or coroutine.
request_context: contextvars.ContextVar[dict | None] = contextvars.ContextVar("opsportal_request", default=None)

_SENSITIVE_KEY = re.compile(
    r"(?:^|[_-])(?:password|passwd|pass|pwd|secret|token|api[_-]?key|authorization|cookie|sessionid|session|"
    r"csrf\w*|email|e-mail|mail|phone|mobile|credentials?)(?:$|[_-])",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# Candidates: groups of digits with spaces, dashes, dots or brackets between them, or a "+" run;
# _phone() keeps those that are dates, versions or IP addresses.
_PHONE = re.compile(r"(?<![\w:/.+-])(?:\+\d[\d ().-]{6,20}\d|\(?\d{2,4}\)?(?:[ .-]\(?\d{2,4}\)?){2,5})(?![\w:/.-])")
# "password=hunter2", "Authorization: Bearer x", "Cookie: sessionid=x; csrftoken=y", "token: x".
_ASSIGNMENT = re.compile(
    r"(?P<key>\b[\w-]*(?:password|passwd|secret|token|api[_-]?key|authorization|sessionid|cookie)\b[\"']?"
    r"\s*[:=]\s*[\"']?(?:(?:bearer|token|basic)\s+)?)(?P<value>[^\s&;,\"']+)",
    re.IGNORECASE,
)
# A credential after its scheme word, without a header name: "Bearer eyJhbGciOi...".
_SCHEME = re.compile(r"(?P<key>\b(?:bearer|token|basic)\s+)(?P<value>[A-Za-z0-9._~+/=-]{16,})", re.IGNORECASE)

# Credentials that are path segments: the intake token (the sender's only credential) and the
# password-reset token ("set-password" is the placeholder Django redirects to, not a secret).
_PATH_SECRET = re.compile(
    r"(?P<key>/(?:api/integrations|accounts/reset)/[^/\s?#\"']+/)(?!set-password(?:[/\s?#\"']|$))"
    r"(?P<value>[^/\s?#&\"']+)",
    re.IGNORECASE,
)


def _phone(match: re.Match) -> str:
    text = match.group(0)
    digits = sum(ch.isdigit() for ch in text)
    # Dates, versions and addresses have fewer digits or no separators between runs.
    if 9 <= digits <= 15 and (text.startswith("+") or re.search(r"[ ()-]", text)):
        return "[phone]"
    return text


def redact_text(text: str) -> str:
    text = _PATH_SECRET.sub(lambda m: m.group("key") + REDACTED, text)
    text = _EMAIL.sub("[email]", text)
    text = _ASSIGNMENT.sub(lambda m: m.group("key") + REDACTED, text)
    text = _SCHEME.sub(lambda m: m.group("key") + REDACTED, text)
    return _PHONE.sub(_phone, text)


def redact(value: Any, key: str = "") -> Any:
    if key and _SENSITIVE_KEY.search(key) and value not in (None, "", [], {}):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [redact(v) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact_text(str(value))


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def new_request_id(incoming: str | None = None) -> str:
    """The caller's X-Request-ID when it is a sane token (it ends up in logs), else a fresh UUID."""
    if incoming and _REQUEST_ID.match(incoming):
        return incoming
    return str(uuid.uuid4())


def current_request_id() -> str | None:
    context = request_context.get()
    return context.get("request_id") if context else None


# Keys the formatter owns; extra fields with these names cannot overwrite them.
_OWN = ("time", "level", "logger", "message")
# Objects Django attaches to records (the request itself, a socket) that say nothing useful as text.
_DROP = {"request", "server_time", "color_message", "taskName"}


class JsonFormatter(BaseJsonFormatter):
    def add_fields(self, log_data: dict, record, message_dict: dict) -> None:
        log_data["time"] = datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = record.message
        context = request_context.get() or {}
        for key, value in context.items():
            if value is not None and not key.startswith("_"):
                log_data[key] = value
        user_id = _user_id(context.get("_request"))
        if user_id is not None:
            log_data["user_id"] = user_id
        for data in (message_dict, _extra(record, self._skip_fields)):
            for key, value in data.items():
                if key not in _OWN and key not in _DROP:
                    log_data[key] = value

    def process_log_record(self, log_data: dict) -> dict:
        return {key: redact(value, key if key not in _OWN else "") for key, value in log_data.items()}


def _extra(record, skip) -> dict:
    return {key: value for key, value in record.__dict__.items() if key not in skip and not key.startswith("_")}


def _user_id(request) -> int | None:
    """The signed-in user's id, without ever loading the user just to log it."""
    user = getattr(request, "__dict__", {}).get("user")
    user = getattr(user, "_wrapped", user)  # AuthenticationMiddleware's lazy object, if evaluated
    if user is None or user is empty or not getattr(user, "is_authenticated", False):
        return None
    return user.pk
