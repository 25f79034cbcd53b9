"""The normalised form every alert source produces, and the parsing helpers they share.

A source turns its sender's raw JSON into one `Batch`: the alerts of one group, each with a
fingerprint, status, times, labels, annotations and a link to what generated it. What only
that sender has (Grafana's dashboard and panel links, the values it evaluated) goes into
`NormalisedAlert.source_fields` and is kept as the alert's `source_fields` JSON, in a shape
the portal can show without knowing the source: `links` (role → http(s) URL, e.g.
`dashboard`, `panel`, `silence`) and `values` (name → value).
"""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rest_framework import serializers

MAX_TRUNCATED = 2_147_483_647  # the largest PositiveIntegerField on every database backend


class PayloadError(ValueError):
    """A request body that is not a usable webhook payload; the message names the field."""


@dataclass(frozen=True)
class NormalisedAlert:
    fingerprint: str
    status: str  # incidents.choices.AlertStatus
    starts_at: datetime
    ends_at: datetime | None
    labels: dict[str, str]
    annotations: dict[str, str]
    source_url: str = ""  # http(s) link to what generated the alert, or ""
    source_fields: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Batch:
    """One notification of one alert group."""

    group_key: str
    alerts: list[NormalisedAlert]
    group_labels: dict[str, str] = field(default_factory=dict)
    external_url: str = ""
    truncated_alerts: int = 0  # alerts of the group the sender left out of this notification


# The label that marks a test alert: the incident it opens is a test (pages nobody, resolves itself).
TEST_LABEL = "opsportal_test"
TEST_ALERTNAME = "OpsPortalTestAlert"


def is_test_alert(labels: dict) -> bool:
    return labels.get(TEST_LABEL) == "true"


_SENT_WITH_THE_PORTAL = re.compile(r'Sent(?: by (?P<who>.+?))? with the portal\'s "Send a test alert" button, ')


@dataclass(frozen=True)
class TestAlert:
    """What a source needs to write one test notification in its sender's own format."""

    test_id: str  # unique per click: the group key and fingerprint, so each test opens its own incident
    status: str  # incidents.choices.AlertStatus
    starts_at: datetime
    ends_at: datetime | None
    integration_name: str
    portal_url: str  # the portal's base URL, as the alert's generator link
    sent_by: str = ""  # who pressed the button

    @property
    def labels(self) -> dict[str, str]:
        return {"alertname": TEST_ALERTNAME, TEST_LABEL: "true", "severity": "info", "test_id": self.test_id}

    @property
    def annotations(self) -> dict[str, str]:
        who = f" by {self.sent_by}" if self.sent_by else ""
        return {
            "summary": f"[TEST] Test alert from integration {self.integration_name}",
            "description": (
                f'Sent{who} with the portal\'s "Send a test alert" button, through the real intake. '
                "It pages nobody and resolves itself."
            ),
        }

    @staticmethod
    def sender_in(annotations: dict) -> str | None:
        """Who pressed the button, read back from annotations written by `annotations` ("" when
        nobody was named); None when the portal did not write them (a test alert its sender labelled)."""
        match = _SENT_WITH_THE_PORTAL.match(str(annotations.get("description", "")))
        return None if match is None else match["who"] or ""


@dataclass(frozen=True)
class Source:
    """An alert source: `normalise` turns a raw JSON object into a Batch or raises PayloadError;
    `test_payload`, when given, writes a realistic payload for the "send a test alert" button."""

    slug: str  # the Integration kind and the `<kind>` of the intake URL (at most 16 characters)
    label: str
    normalise: Callable[[dict], Batch]
    test_payload: Callable[[TestAlert], dict] | None = None


def read_json(body: bytes) -> dict:
    """The body as a JSON object, or PayloadError."""
    try:
        raw = json.loads(body)
    except ValueError as exc:  # also invalid UTF-8
        raise PayloadError(f"Body is not valid JSON: {exc}.") from None
    except RecursionError:
        raise PayloadError("Body is not valid JSON: nested too deeply.") from None
    if not isinstance(raw, dict):
        raise PayloadError("Body must be a JSON object (the Alertmanager webhook payload).")
    # PostgreSQL cannot store NUL in text or jsonb; refusing it here keeps it a 400, not a 503 retried forever.
    if b"\\u0000" in body and _has_nul(raw):
        raise PayloadError("Strings must not contain NUL characters (\\u0000).")
    return raw


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def validated(serializer: serializers.Serializer) -> dict:
    """The serializer's validated data, or PayloadError naming each bad field."""
    if not serializer.is_valid():
        raise PayloadError("; ".join(f"{field}: {message}" for field, message in _flatten(serializer.errors)))
    return serializer.validated_data


def _flatten(errors, prefix: str = ""):
    """DRF's nested errors as ("alerts[2].labels", "This field is required.") pairs."""
    if isinstance(errors, dict):
        for key, value in errors.items():
            yield from _flatten(value, _child_name(prefix, key))
    elif isinstance(errors, list):
        if all(isinstance(e, str) for e in errors):
            yield prefix or "body", " ".join(str(e) for e in errors)
        else:
            for index, value in enumerate(errors):
                if value:
                    yield from _flatten(value, f"{prefix}[{index}]")
    else:
        yield prefix or "body", str(errors)


def _child_name(prefix: str, key) -> str:
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else str(key)


class Labels(serializers.Field):
    """An object of string values (labels, annotations), checked in one pass: a DictField of
    CharFields costs a field run per value, which dominated the intake's CPU time."""

    default_error_messages = {"not_a_dict": "Expected an object of strings but got {kind}."}

    def __init__(self, **kwargs):
        kwargs.setdefault("required", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> dict:
        if not isinstance(data, dict):
            self.fail("not_a_dict", kind=type(data).__name__)
        errors = {}
        for key, value in data.items():
            if isinstance(value, str):
                continue
            if isinstance(value, int | float) and not isinstance(value, bool):
                data[key] = str(value)
            else:
                errors[key] = ["Not a valid string."]
        if errors:
            raise serializers.ValidationError(errors)
        return data

    def to_representation(self, value) -> dict:
        return value


_BAD_TIME = (
    "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
)
_MISSING = object()
_LINK_MAX = 2000


class AlertList(serializers.Field):
    """A notification's alerts, checked by hand in one pass with DRF's messages: a ListField of
    Serializers runs DRF's field machinery for every field of every alert, which made validation
    the intake's main cost per request and a 5 000-alert notification take seconds.

    `fields` maps each alert field to a check that takes the value (or MISSING) and returns what
    is kept, or raises ValidationError; a field whose check returns MISSING is left out.
    """

    default_error_messages = {
        "not_a_list": 'Expected a list of items but got type "{kind}".',
        "empty": "This list may not be empty.",
    }

    def __init__(self, fields: dict[str, Callable], **kwargs):
        self.checks = fields
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> list[dict]:
        if not isinstance(data, list):
            self.fail("not_a_list", kind=type(data).__name__)
        if not data:
            self.fail("empty")
        alerts, errors = [], {}
        for index, item in enumerate(data):
            try:
                alerts.append(self._alert(item))
            except serializers.ValidationError as exc:
                errors[index] = exc.detail
        if errors:
            raise serializers.ValidationError(errors)
        return alerts

    def _alert(self, item) -> dict:
        if not isinstance(item, dict):
            raise serializers.ValidationError(
                {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {type(item).__name__}."]}
            )
        kept, errors = {}, {}
        for name, check in self.checks.items():
            try:
                value = check(item.get(name, _MISSING))
            except serializers.ValidationError as exc:
                errors[name] = exc.detail
                continue
            if value is not _MISSING:
                kept[name] = value
        if errors:
            raise serializers.ValidationError(errors)
        return kept

    def to_representation(self, value) -> list:
        return value


def _fail(message: str):
    raise serializers.ValidationError([message])


def required(check: Callable) -> Callable:
    def checked(value):
        if value is _MISSING:
            _fail("This field is required.")
        if value is None:
            _fail("This field may not be null.")
        return check(value)

    return checked


def optional(check: Callable, default: Callable | None = None, *, nullable: bool = False) -> Callable:
    def checked(value):
        if value is _MISSING or (value is None and nullable):
            return default() if default else None
        if value is None:
            _fail("This field may not be null.")
        return check(value)

    return checked


def text(value, *, max_length: int) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        _fail("Not a valid string.")
    value = str(value).strip()
    if not value:
        _fail("This field may not be blank.")
    if len(value) > max_length:
        _fail(f"Ensure this field has no more than {max_length} characters.")
    return value


def choice(*allowed: str) -> Callable:
    def checked(value):
        if not isinstance(value, str) or value not in allowed:
            _fail(f'"{value}" is not a valid choice.')
        return value

    return checked


def timestamp(value) -> datetime:
    """An RFC 3339 time (Alertmanager sends nanoseconds: Python keeps microseconds); naive is UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        _fail(_BAD_TIME)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def string_map(value) -> dict:
    return _LABELS.to_internal_value(value)


def any_map(value) -> dict:
    if not isinstance(value, dict):
        _fail(f'Expected a dictionary of items but got type "{type(value).__name__}".')
    return value


def link(value) -> str:
    """An http(s) link, or "" (a bad link is dropped, never refused, so it cannot lose the alert)."""
    if value is _MISSING or value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        _fail("Not a valid string.")
    value = str(value).strip()
    if len(value) > _LINK_MAX:
        _fail(f"Ensure this field has no more than {_LINK_MAX} characters.")
    return value if value.lower().startswith(("http://", "https://")) else ""


_LABELS = Labels()


class Link(serializers.CharField):
    """A link shown to responders: kept only when it is http(s), dropped otherwise (never refused,
    so a bad link cannot lose the alert)."""

    def __init__(self, **kwargs):
        super().__init__(required=False, allow_blank=True, allow_null=True, max_length=2000, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data) if data is not None else ""
        return value if value.lower().startswith(("http://", "https://")) else ""
