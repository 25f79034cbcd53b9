"""On-call schedules: who is on call at a given moment.

A schedule has a time zone and layers. A layer is a rotation: participants in order, a shift
length in hours, days or weeks, the local date and time of the first handoff, and an optional
restriction (days of the week and a local time window) for business-hours or follow-the-sun
layers. Where several layers cover a moment the highest one wins; an override puts one person on
call for a period and wins over every layer.

Shift math (incidents/oncall.py) works in the schedule's zone: day and week shifts hand off at
the same local wall-clock time whatever the DST changes in between (a 09:00 handoff stays at
09:00, so the shift that spans the change is an hour shorter or longer); hour shifts are elapsed
time (an 8-hour shift is 8 real hours, so its local handoff moves by an hour across a change).
"""

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q

SHIFT_MAX = 10_000  # shift lengths beyond this are mistakes (10 000 weeks is 190 years)


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"Unknown time zone {value!r}; use an IANA name such as Europe/Paris.")


def validate_weekdays(value) -> None:
    if not isinstance(value, list) or not all(isinstance(d, int) and 0 <= d <= 6 for d in value):
        raise ValidationError("A list of days of the week, 0 (Monday) to 6 (Sunday).")
    if len(set(value)) != len(value):
        raise ValidationError("Each day of the week at most once.")


class ShiftUnit(models.TextChoices):
    HOURS = "hours", "Hours"
    DAYS = "days", "Days"
    WEEKS = "weeks", "Weeks"


class Schedule(models.Model):
    name = models.CharField(max_length=120, unique=True)
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_time_zone],
        help_text="Handoffs and restrictions are read in this zone (an IANA name, e.g. Europe/Paris).",
    )
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


class ScheduleLayer(models.Model):
    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="layers")
    name = models.CharField(max_length=120)
    priority = models.PositiveSmallIntegerField(
        default=1, help_text="Where layers overlap the highest priority wins (follow-the-sun layers above a base)."
    )
    shift_length = models.PositiveIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(SHIFT_MAX)]
    )
    shift_unit = models.CharField(max_length=8, choices=ShiftUnit.choices, default=ShiftUnit.WEEKS)
    rotation_start = models.DateField(help_text="The local date of the first handoff (the first participant's start).")
    handoff_time = models.TimeField(help_text="The local time of each handoff, in the schedule's zone.")
    restrict_weekdays = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_weekdays],
        help_text="Only on these days (0 Monday … 6 Sunday); empty: every day.",
    )
    restrict_start = models.TimeField(null=True, blank=True, help_text="Only from this local time …")
    restrict_end = models.TimeField(null=True, blank=True, help_text="… until this local time (may pass midnight).")

    class Meta:
        ordering = ["schedule", "-priority", "id"]
        constraints = [
            # Two layers of one schedule at the same priority would make "who wins" arbitrary.
            models.UniqueConstraint(fields=["schedule", "priority"], name="schedulelayer_priority_uniq"),
            # A time window has both ends, different from each other (equal ends would be empty).
            models.CheckConstraint(
                condition=Q(restrict_start__isnull=True, restrict_end__isnull=True)
                | Q(restrict_start__isnull=False, restrict_end__isnull=False) & ~Q(restrict_start=F("restrict_end")),
                name="schedulelayer_window_both_ends",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.schedule}: {self.name}"

    def clean(self) -> None:
        if (self.restrict_start is None) != (self.restrict_end is None):
            raise ValidationError({"restrict_end": "Give both ends of the time window, or neither."})
        if self.restrict_start is not None and self.restrict_start == self.restrict_end:
            raise ValidationError({"restrict_end": "The window's end must differ from its start."})

    @property
    def restricted(self) -> bool:
        return bool(self.restrict_weekdays) or self.restrict_start is not None


class LayerParticipant(models.Model):
    layer = models.ForeignKey(ScheduleLayer, on_delete=models.CASCADE, related_name="participants")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["layer", "position"]
        constraints = [
            # The rotation order: one participant per position (a person may appear twice).
            models.UniqueConstraint(fields=["layer", "position"], name="layerparticipant_position_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.layer} #{self.position}: {self.user}"


class ScheduleOverride(models.Model):
    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="overrides")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    note = models.CharField(max_length=200, blank=True, help_text="E.g. 'swap with bob' or 'covering holiday'.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["starts_at", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="scheduleoverride_ends_after_start"),
        ]
        indexes = [
            # "On call now" and the calendar: the overrides of a schedule that end after a moment.
            models.Index(fields=["schedule", "ends_at"], name="scheduleoverride_end_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.schedule}: {self.user} {self.starts_at:%Y-%m-%d %H:%M} → {self.ends_at:%Y-%m-%d %H:%M}"

    def clean(self) -> None:
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValidationError({"ends_at": "The override must end after it starts."})
