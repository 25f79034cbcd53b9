from axes.models import AccessAttempt
from django.utils import timezone


class Lockout(AccessAttempt):
    """The lockout table: one row per (username, client IP) with failed sign-ins in the current window.

    A proxy of django-axes' AccessAttempt, so admins find it by the name the runbooks use.
    Deleting a row unlocks that pair.
    """

    class Meta:
        proxy = True
        verbose_name = "lockout"
        verbose_name_plural = "lockout table"

    @property
    def expires_at(self):
        expiration = getattr(self, "expiration", None)
        return expiration.expires_at if expiration else None

    def is_locked(self, limit: int) -> bool:
        expires = self.expires_at
        return self.failures_since_start >= limit and expires is not None and expires > timezone.now()
