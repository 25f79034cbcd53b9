"""What each retention sweep removed."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class RetentionRun(models.Model):
    started_at = models.DateTimeField(default=timezone.now)
    duration_ms = models.FloatField(default=0)
    retention_days = models.PositiveIntegerField()
    dry_run = models.BooleanField(default=False)
    counts = models.JSONField(default=dict, blank=True, help_text="Rows deleted (or, dry, that would be) per kind.")
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"Retention run {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def total(self) -> int:
        return sum(self.counts.values())
