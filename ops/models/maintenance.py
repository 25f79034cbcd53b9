"""The maintenance switch."""

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone


class MaintenanceSwitch(models.Model):
    """The one row that says whether the portal is in maintenance: the database is the truth, the
    cache only a copy (ops/maintenance.py), so a cache flush never turns maintenance off."""

    enabled = models.BooleanField(default=False)
    message = models.CharField(max_length=300, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "maintenance switch"  # one row: the admin lists "the" switch
        constraints = [
            # A single switch for the whole portal.
            models.CheckConstraint(condition=Q(pk=1), name="maintenance_switch_singleton"),
        ]

    def __str__(self) -> str:
        return "Maintenance on" if self.enabled else "Maintenance off"

    @classmethod
    def current(cls) -> "MaintenanceSwitch":
        return cls.objects.filter(pk=1).first() or cls(pk=1)

    @classmethod
    def set(cls, enabled: bool, *, by=None, message: str = "") -> tuple["MaintenanceSwitch", bool]:
        """Turns maintenance on or off; returns the switch and whether it changed (setting it twice is fine)."""
        from ops import maintenance

        with transaction.atomic():
            switch, _ = cls.objects.select_for_update().get_or_create(pk=1)
            if switch.enabled == enabled:
                transaction.on_commit(lambda: maintenance.remember(enabled))
                return switch, False
            switch.enabled, switch.message = enabled, message[:300]
            switch.changed_by, switch.changed_at = by, timezone.now()
            switch.save()
            transaction.on_commit(lambda: maintenance.remember(enabled))
        return switch, True
