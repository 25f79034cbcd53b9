"""The audit trail every change or dangerous action leaves, wherever it ran."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from runbooks.choices import Safety


class AuditRecord(models.Model):
    """One change or dangerous action (or its dry run): who, when, on what, with what, and the result."""

    action = models.CharField(max_length=60)
    safety = models.CharField(max_length=10, choices=Safety.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who approved (dangerous) or confirmed (change) it, when someone had to.",
    )
    via = models.CharField(max_length=20, help_text="api, portal, runbook or schedule.")
    target = models.CharField(max_length=150, help_text="A service slug, or 'portal'.")
    params = models.JSONField(default=dict, blank=True)
    dry_run = models.BooleanField(default=False)
    ok = models.BooleanField(default=True)
    summary = models.CharField(max_length=500, blank=True)
    result = models.JSONField(default=dict, blank=True)
    incident = models.ForeignKey(
        "incidents.Incident", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The ops console and the admin list the newest records first.
            models.Index(fields=["-created_at"], name="audit_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.action} on {self.target} at {self.created_at:%Y-%m-%d %H:%M}"
