import hashlib
import secrets
from datetime import timedelta

from axes.models import AccessAttempt
from django.conf import settings
from django.db import models
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


def hash_key(key: str) -> str:
    # A key carries 160 random bits, so a fast unsalted hash is enough and keeps the lookup of
    # every token-authenticated request one indexed query.
    return hashlib.sha256(key.encode()).hexdigest()


class ApiToken(models.Model):
    """A script's API key (`Authorization: Token <key>`). Only its SHA-256 is stored: the key
    itself is shown once, when it is issued, and a lost key is replaced, never recovered."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    key_hash = models.CharField(max_length=64, editable=False)
    hint = models.CharField(max_length=8, editable=False, help_text="The first characters of the key.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="Updated at most once an hour."
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"
        constraints = [
            # Authenticating a request: one lookup by the hash of the key it presents.
            models.UniqueConstraint(fields=["key_hash"], name="apitoken_key_hash_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.hint}… ({self.user})"

    @classmethod
    def issue(cls, user) -> tuple["ApiToken", str]:
        """A new token for `user` and its key, which exists only in the caller's hands from now on."""
        token = cls(user=user)
        key = token.new_key()
        token.save()
        return token, key

    def new_key(self) -> str:
        """Give this (unsaved) token a key and return it; only its hash and first characters are kept."""
        key = secrets.token_hex(20)  # DRF's format (40 hex digits), so clients see no difference
        self.key_hash, self.hint = hash_key(key), key[:6]
        return key

    @classmethod
    def for_key(cls, key: str) -> "ApiToken | None":
        if not key or len(key) > 200:
            return None
        return cls.objects.select_related("user").filter(key_hash=hash_key(key)).first()

    def touch(self) -> None:
        """Record use, writing the row at most once an hour rather than on every request."""
        now = timezone.now()
        if self.last_used_at is None or now - self.last_used_at > timedelta(hours=1):
            self.last_used_at = now
            type(self).objects.filter(pk=self.pk).update(last_used_at=now)
