"""The Alertmanager webhook payload (version 4) and Grafana's variant of it.

Grafana's webhook contact point sends the same shape with `"version": "1"` and adds `orgId`,
`title`, `state`, `message` and per alert `silenceURL`, `dashboardURL`, `panelURL`, `values`.
Unknown fields are ignored, so newer senders keep working.
"""

import hashlib
import json
from datetime import datetime

from rest_framework import serializers

from incidents.choices import AlertStatus, IntegrationKind

ACCEPTED_VERSIONS = {IntegrationKind.ALERTMANAGER: {"4"}, IntegrationKind.GRAFANA: {"1", "4"}}
MAX_ALERTS = 1000


class _Labels(serializers.Field):
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


class _Link(serializers.CharField):
    """A link shown to responders: kept only when it is http(s), dropped otherwise (never refused,
    so a bad link cannot lose the alert)."""

    def __init__(self, **kwargs):
        super().__init__(required=False, allow_blank=True, allow_null=True, max_length=2000, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data) if data is not None else ""
        return value if value.lower().startswith(("http://", "https://")) else ""


class AlertSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=AlertStatus.choices)
    labels = _Labels()
    annotations = _Labels(required=False, default=dict)
    startsAt = serializers.DateTimeField()
    endsAt = serializers.DateTimeField(required=False, allow_null=True)
    generatorURL = _Link()
    fingerprint = serializers.CharField(max_length=128)
    silenceURL = _Link()
    dashboardURL = _Link()
    panelURL = _Link()
    values = serializers.DictField(required=False, allow_null=True, default=dict)

    def validate_endsAt(self, value: datetime | None) -> datetime | None:
        # Alertmanager and Grafana send 0001-01-01T00:00:00Z for "not ended".
        return None if value is None or value.year < 1971 else value


class WebhookSerializer(serializers.Serializer):
    version = serializers.CharField(max_length=10)
    groupKey = serializers.CharField(max_length=10_000)
    truncatedAlerts = serializers.IntegerField(required=False, min_value=0, default=0)
    status = serializers.ChoiceField(choices=AlertStatus.choices)
    receiver = serializers.CharField(required=False, allow_blank=True, max_length=500)
    groupLabels = _Labels(required=False, default=dict)
    commonLabels = _Labels(required=False, default=dict)
    commonAnnotations = _Labels(required=False, default=dict)
    externalURL = _Link()
    orgId = serializers.IntegerField(required=False)
    alerts = serializers.ListField(child=AlertSerializer(), allow_empty=False, max_length=MAX_ALERTS)

    def __init__(self, *args, kind: str, **kwargs):
        self.kind = kind
        super().__init__(*args, **kwargs)

    def validate_version(self, value: str) -> str:
        accepted = ACCEPTED_VERSIONS[self.kind]
        if value not in accepted:
            raise serializers.ValidationError(
                f"{self.kind} payload version {value!r} is not supported; expected {' or '.join(sorted(accepted))}."
            )
        return value


class PayloadError(ValueError):
    """A request body that is not a usable webhook payload; the message names the field."""


def parse(body: bytes, kind: str) -> tuple[dict, dict]:
    """(raw JSON object, validated data) or PayloadError."""
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
    return raw, validate(raw, kind)


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def validate(raw: dict, kind: str) -> dict:
    serializer = WebhookSerializer(data=raw, kind=kind)
    if not serializer.is_valid():
        raise PayloadError("; ".join(f"{field}: {message}" for field, message in _flatten(serializer.errors)))
    return serializer.validated_data


def payload_hash(raw: dict) -> str:
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


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
