"""Private calendar feeds: an `.ics` URL per schedule or per person that calendar apps subscribe to.

Calendar apps cannot sign in, so the URL carries a secret token. Only its SHA-256 is stored (the
token has 256 random bits, so an unsalted hash is enough and the lookup is one indexed query, as
for integration tokens); the URL is shown once when the feed is made. Revoking a feed makes its
URL answer 404 from then on.
"""

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from incidents.models.alerts import hash_token, portal_base_url
from incidents.models.schedules import Schedule
from opsportal.roles import is_admin


class CalendarFeedQuerySet(models.QuerySet):
    def active(self):
        return self.filter(revoked_at__isnull=True)


class CalendarFeed(models.Model):
    schedule = models.ForeignKey(Schedule, null=True, blank=True, on_delete=models.CASCADE, related_name="feeds")
    person = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="calendar_feeds",
        help_text="A person's feed: their shifts in every schedule.",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Who made it (and may revoke it).",
    )
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_hint = models.CharField(max_length=8, editable=False, help_text="The first characters of the token.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_fetched_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = CalendarFeedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A feed is of one schedule or of one person, never both or neither.
            models.CheckConstraint(
                condition=Q(schedule__isnull=False, person__isnull=True)
                | Q(schedule__isnull=True, person__isnull=False),
                name="calendarfeed_schedule_or_person",
            ),
        ]

    def __str__(self) -> str:
        what = f"schedule {self.schedule}" if self.schedule_id else f"shifts of {self.person}"
        return f"Calendar feed of {what} ({self.token_hint}…)"

    @classmethod
    def create(cls, *, owner, schedule: Schedule | None = None, person=None) -> tuple["CalendarFeed", str]:
        """A new feed and its token, returned once (only the hash is kept)."""
        token = secrets.token_urlsafe(32)
        feed = cls.objects.create(
            owner=owner, schedule=schedule, person=person, token_hash=hash_token(token), token_hint=token[:6]
        )
        return feed, token

    @classmethod
    def for_token(cls, token: str) -> "CalendarFeed | None":
        if not token or len(token) > 200:
            return None
        return cls.objects.active().select_related("schedule", "person").filter(token_hash=hash_token(token)).first()

    def url(self, token: str) -> str:
        return portal_base_url() + reverse("incidents:calendar_feed", args=[token])

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])

    def may_manage(self, user) -> bool:
        return user.pk == self.owner_id or is_admin(user)
