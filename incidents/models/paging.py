"""Pages: the notification log of an incident, one row per person (or address) paged.

A page is written in the transaction of the change that causes it (the incident opened, a level
escalated), with `due_at` from the person's notification rule (e-mail at once, a webhook after
two minutes …). The escalation sweep sends the due ones; a page whose incident was acknowledged
before it was due is cancelled, not sent. A level that resolves to nobody writes an `unrouted`
page, a timeline warning and a metric: it never passes silently.

A page to a person carries a signed one-time acknowledge link (incidents/paging.py).

An approval page (purpose `approval`) asks someone to approve a dangerous runbook step or ops
request: it has no level, carries the approval's `link` instead of an acknowledge link, and has an
incident only when the approval was asked for one.
"""

import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from incidents.choices import EscalationLevel, PageChannel, PagePurpose, PageState
from incidents.models.incident import Incident
from incidents.models.notifications import WebhookEndpoint
from opsportal.errors import Conflict

DELAY_MAX_MINUTES = 24 * 60
RULES_MAX = 10  # per person: enough for any chain of channels and delays
PERSONAL_WEBHOOK = "Personal webhook of "  # the name of the endpoints made by the notification rules page


class NotificationRule(models.Model):
    """How and when a person is paged: each rule is a channel and a delay after the page."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_rules")
    channel = models.CharField(
        max_length=8, choices=[c for c in PageChannel.choices if c[0] != PageChannel.NONE], default=PageChannel.EMAIL
    )
    endpoint = models.ForeignKey(
        "incidents.WebhookEndpoint",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="The personal webhook (a chat or push service URL) for the webhook channel.",
    )
    delay_minutes = models.PositiveIntegerField(
        default=0,
        validators=[MaxValueValidator(DELAY_MAX_MINUTES)],
        help_text="Minutes after the page, if nobody has acknowledged by then.",
    )

    class Meta:
        ordering = ["user", "delay_minutes", "id"]
        constraints = [
            # A webhook rule names its endpoint; an e-mail rule goes to the user's address.
            models.CheckConstraint(
                condition=Q(channel="webhook", endpoint__isnull=False) | Q(channel="email", endpoint__isnull=True),
                name="notificationrule_endpoint_for_webhook",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user}: {self.get_channel_display()} after {self.delay_minutes} min"

    @classmethod
    def put(
        cls, user, *, channel: str, delay_minutes: int, url: str = "", fmt: str = "json", rule_id: int | None = None
    ) -> "NotificationRule":
        """Adds a rule for `user` (rule_id None) or changes theirs. A webhook rule gets its own
        personal endpoint (signed, subscribed to no broadcast event); an endpoint it shared with
        others (an admin's) is left as it is and a personal one made instead. Conflict past RULES_MAX."""
        with transaction.atomic():
            type(user).objects.select_for_update().filter(
                pk=user.pk
            ).first()  # one change to a person's rules at a time
            mine = list(cls.objects.select_related("endpoint").filter(user=user))
            if rule_id is None:
                if len(mine) >= RULES_MAX:
                    raise Conflict(f"You have {RULES_MAX} notification rules already: change or delete one.")
                rule = cls(user=user)
            else:
                rule = next((r for r in mine if r.pk == rule_id), None)
                if rule is None:
                    raise Conflict("This notification rule no longer exists.")
            old = rule.endpoint
            rule.endpoint = _personal_endpoint(user, old, url, fmt) if channel == PageChannel.WEBHOOK else None
            rule.channel, rule.delay_minutes = channel, delay_minutes
            rule.save()
            if old is not None and old != rule.endpoint:
                _retire(old)
        return rule

    def remove(self) -> None:
        with transaction.atomic():
            endpoint = self.endpoint
            self.delete()
            if endpoint is not None:
                _retire(endpoint)


def _personal_endpoint(user, current: WebhookEndpoint | None, url: str, fmt: str) -> WebhookEndpoint:
    if current is not None and _personal(current) and _rules_using(current) <= 1:
        current.url, current.format, current.enabled = url, fmt, True
        current.save(update_fields=["url", "format", "enabled"])
        return current
    name = f"{PERSONAL_WEBHOOK}{user.get_username()[:80]} ({secrets.token_hex(4)})"
    return WebhookEndpoint.objects.create(name=name, url=url, format=fmt, events=[])


def _personal(endpoint: WebhookEndpoint) -> bool:
    return endpoint.name.startswith(PERSONAL_WEBHOOK) and not endpoint.events


def _rules_using(endpoint: WebhookEndpoint) -> int:
    return NotificationRule.objects.filter(endpoint=endpoint).count()


def _retire(endpoint: WebhookEndpoint) -> None:
    """A personal endpoint no rule uses any more: deleted, or disabled when deliveries to it are in
    an incident's notification log (deleting it would delete them)."""
    if not _personal(endpoint) or _rules_using(endpoint):
        return
    if endpoint.deliveries.exists():
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(enabled=False)
    else:
        endpoint.delete()


class PageQuerySet(models.QuerySet):
    def due(self, now):
        return self.filter(state=PageState.PENDING, due_at__lte=now)

    def escalations(self):
        """Pages of the incident's escalation (not approval pages sent for one of its steps)."""
        return self.filter(purpose=PagePurpose.ESCALATION)


class Page(models.Model):
    incident = models.ForeignKey(Incident, null=True, blank=True, on_delete=models.CASCADE, related_name="pages")
    purpose = models.CharField(max_length=10, choices=PagePurpose.choices, default=PagePurpose.ESCALATION)
    level = models.PositiveSmallIntegerField(
        choices=EscalationLevel.choices, null=True, blank=True, help_text="The escalation level (none for approvals)."
    )
    link = models.URLField(max_length=500, blank=True, help_text="Where to decide, for an approval page.")
    source_key = models.CharField(max_length=120, help_text="What caused it (e.g. timeline:42).")
    key = models.CharField(max_length=400, editable=False, help_text="source_key, via, recipient, channel and rule.")
    text = models.CharField(max_length=300, help_text="What the page says (its e-mail subject).")
    via = models.CharField(max_length=200, help_text="The escalation target that led here, e.g. 'schedule Primary'.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    address = models.CharField(max_length=254, blank=True, help_text="E-mail address of a contact without an account.")
    channel = models.CharField(max_length=8, choices=PageChannel.choices)
    rule = models.ForeignKey(NotificationRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    delivery = models.ForeignKey(
        "incidents.WebhookDelivery", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(max_length=10, choices=PageState.choices, default=PageState.PENDING)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    due_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    link_used_at = models.DateTimeField(null=True, blank=True, help_text="When its acknowledge link was used.")
    created_at = models.DateTimeField(default=timezone.now)

    objects = PageQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # A sweep or notification task that runs twice pages nobody twice for the same cause.
            models.UniqueConstraint(fields=["incident", "key"], name="page_once_per_cause"),
            # The same for approval pages asked for outside an incident (NULLs are never equal).
            models.UniqueConstraint(
                fields=["key"], condition=Q(incident__isnull=True), name="page_once_per_cause_no_incident"
            ),
        ]
        indexes = [
            # The sweep: pages waiting for their delay.
            models.Index(fields=["due_at"], name="page_due_idx", condition=Q(state="pending")),
            # The dashboard: open incidents with a level nobody was paged for.
            models.Index(fields=["incident"], name="page_unrouted_idx", condition=Q(state="unrouted")),
        ]

    def __str__(self) -> str:
        what = self.incident.reference if self.incident_id else self.purpose
        return f"{what} {self.step} → {self.recipient} ({self.state})"

    def save(self, *args, **kwargs):
        if not self.key:
            self.key = (
                f"{self.source_key}|{self.via}|{self.user_id or ''}|{self.address}|{self.channel}|{self.rule_id or ''}"
            )
        super().save(*args, **kwargs)

    @property
    def step(self) -> str:
        """What the notification log shows for it: 'L1', or 'approval'."""
        return f"L{self.level}" if self.purpose == PagePurpose.ESCALATION else self.purpose

    @property
    def recipient(self) -> str:
        if self.user_id:
            return self.user.get_username()
        return self.address or "nobody"
