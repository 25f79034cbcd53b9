"""Post-incident reviews: opened when an incident is resolved, due PIR_DUE_HOURS later."""

from datetime import date, timedelta

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.core.validators import MaxLengthValidator
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from incidents.choices import (
    REVIEW_TRANSITIONS,
    TIME_METRICS,
    ActionItemKind,
    ActionItemStatus,
    EventKind,
    ReviewState,
    Status,
)
from incidents.notifications.registry import register_event
from opsportal.errors import Conflict, DomainError

TEXT_LIMIT = settings.TIMELINE_BODY_MAX_LENGTH
# Announced to subscribed webhooks by mark_overdue_reviews (the owner is e-mailed too).
REVIEW_OVERDUE = register_event("review.overdue", "Review overdue")
# The free-text fields people write; each save of one is a ReviewChange row.
TEXT_FIELDS = (
    "summary",
    "impact",
    "root_cause",
    "contributing_factors",
    "detection",
    "went_well",
    "went_poorly",
    "lucky",
    "lessons",
    "no_action_reason",
)
EDITABLE_FIELDS = (*TEXT_FIELDS, "customer_facing", "no_action_needed", "owner")
METRIC_NAMES = [m[0] for m in TIME_METRICS]


class PublishIncomplete(DomainError):
    def __init__(self, missing: list[str]):
        super().__init__("The review cannot be published yet: " + "; ".join(missing) + ".", missing=missing)


def _text_field(label: str) -> models.TextField:
    return models.TextField(label, blank=True, validators=[MaxLengthValidator(TEXT_LIMIT)])


def first_response_events(incident):
    """Entries by a person at or after detection, earliest first (a human declaring counts)."""
    from incidents.models.incident import TimelineEvent

    return (
        TimelineEvent.objects.visible()
        .filter(incident=incident, author__isnull=False, occurred_at__gte=models.F("incident__detected_at"))
        .order_by("occurred_at", "id")
    )


class ReviewQuerySet(models.QuerySet):
    def with_first_response(self):
        from incidents.models.incident import TimelineEvent

        first = (
            TimelineEvent.objects.visible()
            .filter(
                incident=models.OuterRef("incident"),
                author__isnull=False,
                occurred_at__gte=models.OuterRef("incident__detected_at"),
            )
            .order_by("occurred_at", "id")
            .values("occurred_at")[:1]
        )
        return self.annotate(first_response_at=models.Subquery(first))

    def for_api(self):
        return self.select_related("incident", "incident__sla", "owner").with_first_response()

    def unpublished(self):
        return self.exclude(state=ReviewState.PUBLISHED)

    def overdue(self, now=None):
        return self.unpublished().filter(due_at__lt=now or timezone.now())


class PostIncidentReview(models.Model):
    incident = models.OneToOneField("incidents.Incident", on_delete=models.CASCADE, related_name="review")
    state = models.CharField(max_length=10, choices=ReviewState.choices, default=ReviewState.DRAFT)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    due_at = models.DateTimeField()
    version = models.PositiveIntegerField(default=1)

    summary = _text_field("summary")
    impact = _text_field("impact (who and what was affected)")
    customer_facing = models.BooleanField(null=True, blank=True)
    root_cause = _text_field("root cause")
    contributing_factors = _text_field("contributing factors")
    detection = _text_field("detection (how it was noticed)")
    went_well = _text_field("what went well")
    went_poorly = _text_field("what went poorly")
    lucky = _text_field("where we got lucky")
    lessons = _text_field("lessons learned")
    no_action_needed = models.BooleanField(default=False)
    no_action_reason = _text_field("why no action is needed")
    # {"acknowledge": {"seconds": 420, "reason": "pager acked from phone, portal later"}}
    time_overrides = models.JSONField(default=dict, blank=True)

    overdue_notified_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ReviewQuerySet.as_manager()

    class Meta:
        verbose_name = "post-incident review"
        ordering = ["due_at"]
        indexes = [
            # The overdue sweep and the "due soon" list: unpublished reviews by due time.
            models.Index(fields=["due_at"], name="review_unpublished_due_idx", condition=~Q(state="published")),
        ]

    def __str__(self) -> str:
        return f"Review of {self.incident.reference}"

    @property
    def overdue(self) -> bool:
        return self.state != ReviewState.PUBLISHED and timezone.now() > self.due_at

    @property
    def editable(self) -> bool:
        return self.state != ReviewState.PUBLISHED and self.incident.status in (Status.RESOLVED, Status.CLOSED)

    # --- computed figures -----------------------------------------------------------------

    def computed_times(self) -> dict[str, int | None]:
        incident = self.incident
        values = {}
        for name, _label, start_field, end_field in TIME_METRICS:
            start, end = getattr(incident, start_field), getattr(incident, end_field)
            if name == "acknowledge" and end is None:
                end = min(filter(None, (self._response_clock_ack(), self._first_human_response())), default=None)
            values[name] = int((end - start).total_seconds()) if start and end else None
        return values

    def _response_clock_ack(self):
        """A person's first move out of triggered, as kept by the response clock (alert intake)."""
        try:
            return self.incident.sla.acknowledged_at
        except ObjectDoesNotExist:
            return None

    def _first_human_response(self):
        """When the acknowledgement was skipped, the first entry a person wrote or caused counts."""
        if hasattr(self, "first_response_at"):  # annotated by ReviewQuerySet.with_first_response()
            return self.first_response_at
        return first_response_events(self.incident).values_list("occurred_at", flat=True).first()

    def times(self) -> dict[str, dict]:
        computed = self.computed_times()
        result = {}
        for name, label, *_ in TIME_METRICS:
            override = self.time_overrides.get(name) or {}
            value = override.get("seconds", computed[name])
            result[name] = {
                "label": label,
                "computed": computed[name],
                "override": override.get("seconds"),
                "reason": override.get("reason", ""),
                "seconds": value,
            }
        return result

    def key_moments(self):
        return self.incident.events.visible().filter(pinned=True).select_related("author").order_by("occurred_at", "id")

    def missing_for_publish(self) -> list[str]:
        required = (("summary", "Summary"), ("impact", "Impact"), ("root_cause", "Root cause"))
        missing = [f"{label} is empty" for field, label in required if not getattr(self, field).strip()]
        owned = self.action_items.exclude(status=ActionItemStatus.WONT_DO).filter(
            owner__isnull=False, due_date__isnull=False
        )
        if self.no_action_needed:
            if not self.no_action_reason.strip():
                missing.append("“No action needed” needs a justification")
        elif not owned.exists():
            missing.append(
                "Add at least one action item with an owner and a due date, "
                "or mark “no action needed” with a justification"
            )
        return missing

    # --- verbs ----------------------------------------------------------------------------

    @classmethod
    def open_for(cls, incident, *, by=None) -> "PostIncidentReview":
        """Called when an incident is resolved; resolving again after a reopen keeps the same review."""
        review, created = cls.objects.get_or_create(
            incident=incident,
            defaults={
                "owner": incident.commander,
                "due_at": incident.resolved_at + timedelta(hours=settings.PIR_DUE_HOURS),
            },
        )
        if created:
            incident.events.model.record(
                incident,
                kind=EventKind.NOTE,
                author=by,
                body=f"Post-incident review opened, due within {settings.PIR_DUE_HOURS} h.",
            )
        return review

    def _locked(self) -> "PostIncidentReview":
        return type(self).objects.select_for_update().select_related("incident").get(pk=self.pk)

    def update(self, *, by, version: int, time_overrides: dict | None = None, **changes) -> "PostIncidentReview":
        """Save some fields. A field someone else changed after `version` is refused with their text."""
        unknown = set(changes) - set(EDITABLE_FIELDS)
        if unknown:
            raise DomainError(f"These fields cannot be changed: {', '.join(sorted(unknown))}.")
        with transaction.atomic():
            locked = self._locked()
            locked._check_editable()
            fields = set(changes) | ({"time_overrides"} if time_overrides is not None else set())
            if version > locked.version:
                raise DomainError(f"version {version} is newer than the review (version {locked.version}).")
            clashing = sorted(
                set(locked.changes.filter(version__gt=version, field__in=fields).values_list("field", flat=True))
            )
            if clashing:
                raise Conflict(
                    "Someone else changed " + ", ".join(f.replace("_", " ") for f in clashing)
                    + " since you loaded the review; their text is shown next to yours.",
                    version=locked.version,
                    current={f: _plain(getattr(locked, f)) for f in clashing},
                )  # fmt: skip
            if time_overrides is not None:
                changes["time_overrides"] = locked._merged_overrides(time_overrides)
            changed = {f: v for f, v in changes.items() if getattr(locked, f) != v}
            if not changed:
                self.refresh_from_db()
                return self
            locked.version += 1
            for field, value in changed.items():
                ReviewChange.objects.create(
                    review=locked,
                    version=locked.version,
                    field=field,
                    old_value=_plain(getattr(locked, field)),
                    new_value=_plain(value),
                    by=by,
                )
                setattr(locked, field, value)
            locked.full_clean(exclude=["incident", "owner"])
            locked.save()
        self.refresh_from_db()
        return self

    def _merged_overrides(self, overrides: dict) -> dict:
        merged = dict(self.time_overrides)
        for name, override in overrides.items():
            if name not in METRIC_NAMES:
                raise DomainError(f"Unknown time {name!r}; expected one of: {', '.join(METRIC_NAMES)}.")
            if override is None or override.get("seconds") is None:
                merged.pop(name, None)
                continue
            seconds, reason = override.get("seconds"), str(override.get("reason", "")).strip()
            if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds < 0:
                raise DomainError(f"The {name} override must be a whole number of seconds, 0 or more.")
            if not reason:
                raise DomainError(f"Overriding the time to {name} needs a reason.")
            merged[name] = {"seconds": seconds, "reason": reason[:500]}
        return merged

    def _check_editable(self) -> None:
        if self.incident.status not in (Status.RESOLVED, Status.CLOSED):
            raise DomainError(
                f"{self.incident.reference} is {self.incident.status}; its review opens again once it is resolved."
            )
        if self.state == ReviewState.PUBLISHED:
            raise DomainError("This review is published; reopen it for amendments (with a reason) to change it.")

    def _move(self, locked: "PostIncidentReview", state: str, by, note: str) -> None:
        if state not in REVIEW_TRANSITIONS[ReviewState(locked.state)]:
            raise Conflict(f"A {locked.get_state_display().lower()} review cannot move to {state}.")
        locked.state = state
        locked.version += 1
        locked.save()
        locked.incident.events.model.record(locked.incident, kind=EventKind.NOTE, author=by, body=note)

    def submit(self, *, by) -> "PostIncidentReview":
        with transaction.atomic():
            locked = self._locked()
            locked._check_editable()
            self._move(locked, ReviewState.IN_REVIEW, by, "Post-incident review submitted for review.")
        self.refresh_from_db()
        return self

    def publish(self, *, by) -> "PostIncidentReview":
        with transaction.atomic():
            locked = self._locked()
            locked._check_editable()
            missing = locked.missing_for_publish()
            if missing:
                raise PublishIncomplete(missing)
            locked.published_at = timezone.now()
            late = " (late)" if locked.published_at > locked.due_at else ""
            self._move(locked, ReviewState.PUBLISHED, by, f"Post-incident review published{late}.")
        self.refresh_from_db()
        return self

    def reopen(self, *, by, reason: str) -> "PostIncidentReview":
        reason = (reason or "").strip()
        if not reason:
            raise DomainError("Say why the review is reopened; the reason is kept with it.")
        with transaction.atomic():
            locked = self._locked()
            if locked.state != ReviewState.PUBLISHED:
                raise Conflict("Only a published review can be reopened for amendments.")
            ReviewReopening.objects.create(review=locked, reason=reason[:2000], by=by)
            self._move(locked, ReviewState.DRAFT, by, f"Post-incident review reopened for amendments: {reason}")
        self.refresh_from_db()
        return self

    def mark_overdue(self, *, now=None) -> bool:
        """Stamp the first overdue notice; returns False when it was already sent (or not due)."""
        now = now or timezone.now()
        with transaction.atomic():
            locked = self._locked()
            if locked.state == ReviewState.PUBLISHED or locked.due_at >= now or locked.overdue_notified_at:
                return False
            locked.overdue_notified_at = now
            locked.save(update_fields=["overdue_notified_at"])
            locked.incident.events.model.record(
                locked.incident,
                kind=EventKind.NOTE,
                body=f"Post-incident review is overdue (was due {timezone.localtime(locked.due_at):%Y-%m-%d %H:%M %Z}).",  # noqa: E501
            )
        self.refresh_from_db()
        return True

    # --- action items ---------------------------------------------------------------------

    def add_action_item(self, *, by, title: str, kind: str, owner=None, due_date: date | None = None) -> "ActionItem":
        with transaction.atomic():
            locked = self._locked()
            locked._check_editable()
            if due_date is not None and due_date < timezone.localdate():
                raise DomainError("The due date of a new action item cannot be in the past.")
            item = ActionItem(review=locked, title=title, kind=kind, owner=owner, due_date=due_date, created_by=by)
            item.full_clean()
            item.save()
            locked.version += 1
            locked.save(update_fields=["version", "updated_at"])
        return item


def _plain(value):
    if isinstance(value, models.Model):
        return value.pk
    return value


class ReviewChange(models.Model):
    """One field of a review changed by one save: the history, and the base of conflict checks."""

    review = models.ForeignKey(PostIncidentReview, on_delete=models.CASCADE, related_name="changes")
    version = models.PositiveIntegerField()
    field = models.CharField(max_length=40)
    old_value = models.JSONField(null=True)
    new_value = models.JSONField(null=True)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version", "field"]
        indexes = [
            # Conflict check: changes to these fields after the version the editor loaded.
            models.Index(fields=["review", "field", "version"], name="reviewchange_conflict_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.review_id} v{self.version} {self.field}"


class ReviewReopening(models.Model):
    review = models.ForeignKey(PostIncidentReview, on_delete=models.CASCADE, related_name="reopenings")
    reason = models.TextField()
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.review} reopened {self.at:%Y-%m-%d}"


class ActionItemQuerySet(models.QuerySet):
    def open(self):
        return self.filter(status=ActionItemStatus.OPEN)

    def past_due(self, today=None):
        return self.open().filter(due_date__lt=today or timezone.localdate())


class ActionItem(models.Model):
    review = models.ForeignKey(PostIncidentReview, on_delete=models.CASCADE, related_name="action_items")
    title = models.CharField(max_length=300)
    kind = models.CharField(max_length=10, choices=ActionItemKind.choices, default=ActionItemKind.FIX)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="action_items"
    )
    due_date = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=ActionItemStatus.choices, default=ActionItemStatus.OPEN)
    reason = models.TextField(blank=True, help_text="Why it won't be done.", validators=[MaxLengthValidator(2000)])
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    objects = ActionItemQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [
            # The dashboard's "open action items past their due date".
            models.Index(fields=["due_date"], name="actionitem_open_due_idx", condition=Q(status="open")),
        ]

    def __str__(self) -> str:
        return self.title

    def change(self, *, by, **changes) -> "ActionItem":
        allowed = {"title", "kind", "owner", "due_date", "status", "reason"}
        unknown = set(changes) - allowed
        if unknown:
            raise DomainError(f"These fields cannot be changed: {', '.join(sorted(unknown))}.")
        with transaction.atomic():
            locked = type(self).objects.select_for_update().select_related("review__incident").get(pk=self.pk)
            if locked.review.state == ReviewState.PUBLISHED and set(changes) - {"status", "reason"}:
                raise DomainError("The review is published; only the status of its action items can change.")
            new_due = changes.get("due_date")
            if new_due is not None and new_due != locked.due_date and new_due < timezone.localdate():
                raise DomainError("A due date cannot be moved into the past.")
            for field, value in changes.items():
                setattr(locked, field, value)
            if locked.status == ActionItemStatus.WONT_DO and not locked.reason.strip():
                raise DomainError("Say why this action item won't be done.")
            if locked.status == ActionItemStatus.OPEN:
                locked.completed_at = None
            elif locked.completed_at is None:
                locked.completed_at = timezone.now()
            locked.full_clean()
            locked.save()
        self.refresh_from_db()
        return self
