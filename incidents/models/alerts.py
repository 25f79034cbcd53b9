"""Alert intake: integrations that Alertmanager and Grafana post to, the payloads they sent,
the alert groups they belong to and each alert, kept by fingerprint.

The order of work for one delivery is: the web process validates and stores an `AlertDelivery`
and queues it (answering 202); the worker then applies it with `apply_delivery` in
incidents/alerting/intake.py, holding the `AlertGroup` row lock so concurrent deliveries of one
group (Alertmanager HA pairs send twice) are applied one after the other.
"""

import hashlib
import logging
import secrets

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import connections, models, router
from django.db.models import Q
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.urls import reverse
from django.utils import timezone

from incidents.alerting import sources
from incidents.choices import (
    DEFAULT_SEVERITY_MAPPING,
    AlertStatus,
    DeliveryState,
    Severity,
)
from incidents.models.incident import Incident, Service

logger = logging.getLogger(__name__)

# The intake finds its integration in the shared cache by token hash, so a POST costs one INSERT.
# Any change to an integration (token rotated, edited, deleted) replaces its entry with CHANGED
# for twice the TTL: lookups then read the row and may not re-add a copy (cache.add), so a copy
# read just before the change cannot come back, and a retired token answers 404 at once.
TOKEN_CACHE_TTL = 30  # seconds: bounds a stale copy if the cache missed an invalidation (cache down)
CHANGED = "changed"


def hash_token(token: str) -> str:
    # The token carries 256 random bits, so a fast unsalted hash is enough and lets the intake
    # find the integration with one indexed lookup.
    return hashlib.sha256(token.encode()).hexdigest()


def portal_base_url() -> str:
    """PORTAL_BASE_URL: the same address in integration URLs whether the command, the admin or
    the portal made them, and in links sent by email and webhooks."""
    return settings.PORTAL_BASE_URL.rstrip("/")


def _default_mapping() -> dict:
    return dict(DEFAULT_SEVERITY_MAPPING)


class Integration(models.Model):
    name = models.CharField(max_length=120, unique=True)
    kind = models.CharField(max_length=16, choices=sources.choices, help_text="The alert source that posts here.")
    default_service = models.ForeignKey(
        Service,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Used when an alert has no service or job label naming a known service.",
    )
    severity_mapping = models.JSONField(
        default=_default_mapping,
        blank=True,
        help_text='labels.severity → incident severity, e.g. {"critical": "SEV1", "warning": "SEV3"}.',
    )
    default_severity = models.CharField(
        max_length=4,
        choices=Severity.choices,
        default=Severity.SEV3,
        help_text="For alerts whose severity label is missing or not in the mapping.",
    )
    run_first_look = models.BooleanField(
        default=True,
        help_text="Start the matching runbook's read-only steps as soon as an alert opens an incident.",
    )
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_hint = models.CharField(max_length=8, editable=False, help_text="The first characters of the token.")
    token_created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def clean(self) -> None:
        mapping = self.severity_mapping
        if not isinstance(mapping, dict):
            raise ValidationError({"severity_mapping": "Must be an object of label value → severity."})
        bad = {k: v for k, v in mapping.items() if v not in Severity.values}
        if bad:
            raise ValidationError(
                {"severity_mapping": f"Unknown severities {bad}; use one of {', '.join(Severity.values)}."}
            )

    # --- verbs ----------------------------------------------------------------------------

    @classmethod
    def create(cls, *, name: str, kind: str, by=None, **fields) -> tuple["Integration", str]:
        """A new integration and its token. The token is returned once and only its hash is kept."""
        integration = cls(name=name, kind=kind, created_by=by, **fields)
        token = integration.issue_token()
        integration.full_clean()
        integration.save()
        return integration, token

    def rotate_token(self) -> str:
        """Replace the token; the old URL answers 404 from now on."""
        stored = type(self).objects.filter(pk=self.pk).values_list("token_hash", flat=True).first()
        token = self.issue_token()
        forget_token(stored)  # the new token cannot have a cached copy yet
        type(self).objects.filter(pk=self.pk).update(
            token_hash=self.token_hash, token_hint=self.token_hint, token_created_at=self.token_created_at
        )
        return token

    def issue_token(self) -> str:
        """Give this instance a new token (the caller saves it) and return the token itself."""
        if self.token_hash:
            self._retired_token_hash = self.token_hash
        token = secrets.token_urlsafe(32)
        self.token_hash = hash_token(token)
        self.token_hint = token[:6]
        self.token_created_at = timezone.now()
        return token

    @classmethod
    def for_token(cls, kind: str, token: str) -> "Integration | None":
        """The integration of an intake URL: from the shared cache, else its row (then cached)."""
        if not token or len(token) > 200:
            return None
        digest = hash_token(token)
        key = _token_key(digest)
        cached = _cache_call(cache.get, key)
        if isinstance(cached, cls):
            return cached if cached.kind == kind else None
        found = cls.objects.filter(token_hash=digest).first()
        if found is not None and cached is None:
            _cache_call(cache.add, key, found, TOKEN_CACHE_TTL)
        return found if found is not None and found.kind == kind else None

    def url(self, token: str, *, base_url: str | None = None) -> str:
        """The full webhook URL with its token, to paste into Alertmanager or Grafana."""
        path = reverse("alert-intake", kwargs={"kind": self.kind, "token": token})
        return (base_url.rstrip("/") if base_url else portal_base_url()) + path

    def severity_for(self, label: str | None) -> str:
        mapping = {str(k).lower(): v for k, v in (self.severity_mapping or {}).items()}
        return mapping.get((label or "").strip().lower(), self.default_severity)


def _token_key(token_hash: str) -> str:
    return f"intake:integration:{token_hash}"


def _cache_call(method, *args):
    try:
        return method(*args)
    except Exception as exc:  # noqa: BLE001 - the row is the truth; without a cache, read it
        logger.warning("integration token cache unavailable: %s", exc)
        return None


def forget_token(*token_hashes: str | None) -> None:
    """Mark the cached copies of these tokens' integration as changed (see TOKEN_CACHE_TTL)."""
    keys = {_token_key(h): CHANGED for h in token_hashes if h}
    if keys:
        _cache_call(cache.set_many, keys, 2 * TOKEN_CACHE_TTL)


@receiver(post_save, sender=Integration, dispatch_uid="integration-token-cache-save")
def _integration_saved(sender, instance: Integration, created: bool, **kwargs) -> None:
    retired = getattr(instance, "_retired_token_hash", None)
    forget_token(retired, None if created else instance.token_hash)


@receiver(post_delete, sender=Integration, dispatch_uid="integration-token-cache-delete")
def _integration_deleted(sender, instance: Integration, **kwargs) -> None:
    forget_token(instance.token_hash)


class AlertDelivery(models.Model):
    """One webhook request, stored before it is answered so that no alert is ever lost."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="deliveries")
    payload = models.JSONField()
    payload_hash = models.CharField(max_length=64, help_text="SHA-256 of the canonical payload.")
    group_key = models.TextField(blank=True)
    alert_count = models.PositiveIntegerField(default=0)
    truncated_alerts = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    received_at = models.DateTimeField(default=timezone.now)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True, help_text="What processing did with each alert.")
    # A delivery is applied a chunk per transaction; each chunk stores how far it got, so that a
    # retry after a crash goes on from there with what the earlier chunks changed.
    applied_alerts = models.PositiveIntegerField(default=0, help_text="Alerts the committed chunks applied.")
    resolved_in_incident = models.BooleanField(
        default=False,
        help_text="A committed chunk resolved an alert of the group's open incident (the last chunk then "
        "checks whether all its alerts are resolved).",
    )

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "alert deliveries"
        constraints = [
            # Redelivery of the same payload (Alertmanager retries, HA pairs) is stored once.
            models.UniqueConstraint(fields=["integration", "payload_hash"], name="alertdelivery_payload_uniq"),
        ]
        indexes = [
            # The sweep that re-queues deliveries whose queue message was lost.
            models.Index(fields=["enqueued_at"], name="alertdelivery_pending_idx", condition=Q(state="pending")),
            # Pruning processed payloads past their retention.
            models.Index(fields=["received_at"], name="alertdelivery_received_idx"),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} ({self.alert_count} alerts, {self.state})"

    @classmethod
    def keep(cls, *, payload: dict, payload_json: str, **values) -> "tuple[AlertDelivery, bool]":
        """Store a delivery unless its integration already holds this payload (same payload_hash):
        one INSERT ... ON CONFLICT DO NOTHING RETURNING id, so a duplicate needs no savepoint or
        IntegrityError, and the statement is built once per process (the ORM's create() cost more
        than the intake's whole JSON parse). The payload comes as the canonical JSON its hash was
        taken from, so it is encoded once. Returns (delivery, created)."""
        delivery = cls(payload=payload, **values)
        connection = connections[router.db_for_write(cls)]
        sql, fields = _insert_statement(cls, connection)
        params = [
            payload_json if f.name == "payload" else f.get_db_prep_save(f.pre_save(delivery, True), connection)
            for f in fields
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is None:  # stored before (a retry, an HA pair): the first one stands
            return cls.objects.get(integration_id=delivery.integration_id, payload_hash=delivery.payload_hash), False
        delivery.pk = row[0]
        delivery._state.adding, delivery._state.db = False, connection.alias
        return delivery, True


_insert_statements: dict = {}


def _insert_statement(model, connection) -> tuple[str, list]:
    key = (model, connection.alias)
    if key not in _insert_statements:
        quote = connection.ops.quote_name
        fields = [f for f in model._meta.concrete_fields if not f.primary_key]
        cast = "::jsonb" if connection.vendor == "postgresql" else ""
        values = ", ".join(f"%s{cast}" if f.name == "payload" else "%s" for f in fields)
        # Names from the model's own metadata, quoted; every value is a parameter.
        _insert_statements[key] = (
            f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "  # noqa: S608
            f"VALUES ({values}) ON CONFLICT ({quote('integration_id')}, {quote('payload_hash')}) DO NOTHING "
            f"RETURNING {quote(model._meta.pk.column)}",
            fields,
        )
    return _insert_statements[key]


def hash_group_key(group_key: str) -> str:
    return hashlib.sha256(group_key.encode()).hexdigest()


class AlertGroup(models.Model):
    """One Alertmanager group (groupKey) of one integration; points at its current incident.

    The row is locked while a delivery of the group is applied, which is what makes two
    concurrent deliveries open one incident, not two.
    """

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="groups")
    group_key = models.TextField()
    key_hash = models.CharField(max_length=64)
    incident = models.ForeignKey(
        Incident, null=True, blank=True, on_delete=models.SET_NULL, related_name="alert_groups"
    )
    group_labels = models.JSONField(default=dict, blank=True)
    external_url = models.URLField(max_length=2000, blank=True)
    truncated_alerts = models.PositiveIntegerField(default=0, help_text="As in the latest delivery.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # group keys can be longer than a btree entry allows, hence the hash.
            models.UniqueConstraint(fields=["integration", "key_hash"], name="alertgroup_key_uniq"),
        ]

    def __str__(self) -> str:
        return self.group_key[:80]

    @property
    def open_incident(self) -> Incident | None:
        """The incident the group's alerts go to: its current one while open, else none yet."""
        return self.incident if self.incident_id and self.incident.is_open else None


class AlertQuerySet(models.QuerySet):
    def firing(self):
        return self.filter(status=AlertStatus.FIRING)


class Alert(models.Model):
    """One alert of one incident, by fingerprint; firing again later in the same incident updates it."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="alerts")
    group = models.ForeignKey(AlertGroup, on_delete=models.CASCADE, related_name="alerts")
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="alerts")
    fingerprint = models.CharField(max_length=128)
    alertname = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=8, choices=AlertStatus.choices)
    labels = models.JSONField(default=dict)
    annotations = models.JSONField(default=dict)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True)
    generator_url = models.URLField(max_length=2000, blank=True)
    source_fields = models.JSONField(
        default=dict,
        blank=True,
        help_text='What only its source sends: {"links": {role: url}, "values": {name: value}}.',
    )
    last_received_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ["-starts_at", "-id"]
        constraints = [
            # An alert is kept once per incident; redelivery updates the same row.
            models.UniqueConstraint(fields=["incident", "fingerprint"], name="alert_incident_fingerprint_uniq"),
        ]
        indexes = [
            # "Alerts firing now" on the dashboard, newest first.
            models.Index(fields=["-starts_at"], name="alert_firing_idx", condition=Q(status="firing")),
            # A resolved alert looks for its row in the group's previous incidents.
            models.Index(fields=["group", "fingerprint"], name="alert_group_fingerprint_idx"),
            # The live incident page: the latest delivery of one incident's alerts.
            models.Index(fields=["incident", "last_received_at"], name="alert_live_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.alertname or self.fingerprint} ({self.status})"

    @property
    def severity_label(self) -> str:
        return self.labels.get("severity", "")

    @property
    def summary(self) -> str:
        return self.annotations.get("summary", "") or self.alertname

    @property
    def runbook_url(self) -> str:
        url = self.annotations.get("runbook_url", "")
        return url if url.startswith(("http://", "https://")) else ""

    @property
    def values(self) -> dict:
        """The values the source evaluated when the alert fired (Grafana's `values`), if any."""
        return self.source_fields.get("values") or {}

    @property
    def links(self) -> dict[str, str]:
        """The alert's http(s) links by role, in the order responders read them: what generated
        it, the source's own links (Grafana's dashboard, panel and silence), the runbook."""
        found = {**(self.source_fields.get("links") or {}), "source": self.generator_url, "runbook": self.runbook_url}
        found = {role: url for role, url in found.items() if isinstance(url, str) and _is_http(url)}
        ordered = {role: found.pop(role) for role in LINK_ORDER if role in found}
        return ordered | dict(sorted(found.items()))


# Roles of links shown in this order; a source's other roles follow, alphabetically.
LINK_ORDER = ("source", "dashboard", "panel", "runbook", "silence")


def _is_http(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))
