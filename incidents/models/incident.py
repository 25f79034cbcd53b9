from django.conf import settings
from django.core.validators import MaxLengthValidator
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from incidents import signals
from incidents.choices import (
    CONFIRM_ACTIONS,
    OPEN_STATUSES,
    REOPEN_FROM,
    REOPEN_TO,
    STATUS_TIMESTAMP,
    EventKind,
    EventSource,
    RevisionAction,
    Severity,
    Status,
    action_label,
    allowed_transitions,
    needs_reason,
    next_step,
)
from incidents.models.review import PostIncidentReview
from opsportal import metrics
from opsportal.connections import ConnectionSettingValidator, name_list, validate_host_list, validate_secret_names
from opsportal.errors import BadParameters, DomainError, InvalidTransition, StaleVersion
from opsportal.markdown import render_markdown

ROLE_FIELDS = ("commander", "scribe", "communications_lead")


class ReasonRequired(BadParameters):
    """A move the lifecycle allows only with a reason, asked without one (HTTP 400, names the field)."""


class Service(models.Model):
    name = models.CharField(max_length=120, unique=True)
    slug = models.SlugField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    owner_team = models.CharField(max_length=120, blank=True)
    public = models.BooleanField(default=False, help_text="Shown on the public status page.")

    # Where runbook steps connect. A URL without a password, or env:NAME read by the worker at run time.
    base_url = models.CharField(
        "base URL", max_length=500, blank=True, validators=[ConnectionSettingValidator(("http", "https"))]
    )
    database_url = models.CharField(
        "database URL", max_length=500, blank=True, validators=[ConnectionSettingValidator(("postgres", "postgresql"))]
    )
    redis_url = models.CharField(
        "Redis URL", max_length=500, blank=True, validators=[ConnectionSettingValidator(("redis", "rediss", "unix"))]
    )
    broker_url = models.CharField(
        "broker URL",
        max_length=500,
        blank=True,
        validators=[ConnectionSettingValidator(("redis", "rediss", "amqp", "amqps"))],
    )
    prometheus_url = models.CharField(
        "Prometheus URL", max_length=500, blank=True, validators=[ConnectionSettingValidator(("http", "https"))]
    )
    # What an http_check of this service may reach and send besides its base URL's host.
    http_hosts = models.CharField(
        "other hosts for HTTP checks",
        max_length=1000,
        blank=True,
        validators=[validate_host_list],
        help_text="Host names, comma-separated, that HTTP checks of this service may call besides its base URL's "
        "host (e.g. status.example.com). Loopback and link-local addresses only when the base URL is one.",
    )
    secret_names = models.CharField(
        "secrets",
        max_length=1000,
        blank=True,
        validators=[validate_secret_names],
        help_text="Names of the workers' environment variables, comma-separated, that this service's steps may "
        "send (a header written env:NAME). The portal's own settings (SECRET_KEY, DATABASE_URL, REDIS_URL, "
        "CELERY_BROKER_URL) never can.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def extra_http_hosts(self) -> set[str]:
        return {host.lower().strip("[]") for host in name_list(self.http_hosts)}

    @property
    def declared_secrets(self) -> list[str]:
        return name_list(self.secret_names)


class IncidentQuerySet(models.QuerySet):
    def open(self):
        return self.filter(status__in=OPEN_STATUSES)

    def for_list(self):
        return self.select_related("commander").prefetch_related("services")

    def for_detail(self):
        return self.select_related("commander", "scribe", "communications_lead", "review", "sla").prefetch_related(
            "services"
        )


class Incident(models.Model):
    title = models.CharField(max_length=200)
    summary = models.TextField(blank=True, validators=[MaxLengthValidator(settings.TIMELINE_BODY_MAX_LENGTH)])
    severity = models.CharField(max_length=4, choices=Severity.choices, default=Severity.SEV3)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.TRIGGERED)

    commander = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    scribe = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    communications_lead = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    services = models.ManyToManyField(Service, blank=True, related_name="incidents")
    public = models.BooleanField(
        default=False, help_text="Shown on the public status page, with its communication entries as updates."
    )
    is_test = models.BooleanField(
        default=False,
        editable=False,
        help_text="Opened by a test alert: it pages nobody, runs no first look and resolves itself.",
    )
    # What customers read: never the internal title (an alert's text) or summary.
    public_title = models.CharField(max_length=200, blank=True)
    public_message = models.TextField(blank=True, validators=[MaxLengthValidator(2000)])

    started_at = models.DateTimeField(help_text="When the impact began (editable).")
    detected_at = models.DateTimeField(default=timezone.now)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    mitigated_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = IncidentQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The incident list: newest first, filtered by status and severity.
            models.Index(fields=["status", "severity", "-id"], name="incident_status_sev_idx"),
            # Dashboards and the status page ask for open incidents only.
            models.Index(fields=["severity", "-id"], name="incident_open_idx", condition=Q(status__in=OPEN_STATUSES)),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.title}"

    def save(self, *args, **kwargs):
        if self.started_at is None:
            self.started_at = self.detected_at or timezone.now()
        super().save(*args, **kwargs)

    @property
    def reference(self) -> str:
        return f"INC-{self.pk}" if self.pk else "INC-?"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def priority(self) -> str:
        return Severity(self.severity).priority

    def allowed_transitions(self) -> list[str]:
        return allowed_transitions(self.status)

    @property
    def status_actions(self) -> list[dict]:
        """The status buttons, as verbs: the lifecycle's next step first and primary."""
        primary = next_step(self.status)
        actions = [
            {
                "to": target,
                "label": action_label(self.status, target),
                "primary": target == primary,
                "confirm": target in CONFIRM_ACTIONS,
                "needs_reason": needs_reason(self.status, target),
            }
            for target in allowed_transitions(self.status)
        ]
        return sorted(actions, key=lambda a: not a["primary"])

    # --- verbs ----------------------------------------------------------------------------

    @classmethod
    def declare(cls, *, by, services=(), **fields) -> "Incident":
        """Open an incident and write its first timeline event, in one transaction."""
        with transaction.atomic():
            incident = cls(created_by=by, **fields)
            incident.full_clean(exclude=["started_at"])
            incident.save()
            if services:
                incident.services.set(services)
            event = TimelineEvent.record(
                incident,
                kind=EventKind.STATUS_CHANGE,
                author=by,
                body=f"Incident declared as **{incident.severity}** ({incident.priority}): {incident.title}",
                occurred_at=incident.detected_at,
            )
            signals.incident_declared.send(sender=cls, incident=incident, by=by, event=event)
        return incident

    def transition_to(self, status: str, *, by=None, note: str = "") -> "Incident":
        """Move to `status` if the lifecycle allows it, stamping its timestamp and the timeline.

        Closing an incident that was never resolved needs a reason (`note`); it stamps the
        resolution too and opens the review, as resolving would.
        """
        if status not in Status.values:
            raise DomainError(f"Unknown status {status!r}; expected one of: {', '.join(Status.values)}.")
        with transaction.atomic():
            locked = type(self).objects.select_for_update().get(pk=self.pk)
            current = locked.status
            if status == current:
                raise InvalidTransition(f"{locked.reference} is already {Status(current).label.lower()}.")
            if status not in allowed_transitions(current):
                raise InvalidTransition(
                    f"Cannot move {locked.reference} from {current} to {status}; "
                    f"allowed: {', '.join(allowed_transitions(current)) or 'none'}."
                )
            if needs_reason(current, status) and not note.strip():
                raise ReasonRequired(
                    f"note is required: closing {locked.reference} while it is {current} skips resolving it; "
                    "resolve it first, or give the reason it is closed without resolving.",
                    field="note",
                )
            now = timezone.now()
            reopening = current in REOPEN_FROM and status == REOPEN_TO
            if reopening:
                locked.resolved_at = None
                locked.closed_at = None
            skipped_resolution = status == Status.CLOSED and current not in REOPEN_FROM
            stamps = [STATUS_TIMESTAMP.get(status)]
            if skipped_resolution:
                stamps.insert(0, STATUS_TIMESTAMP[Status.RESOLVED])
            stamped = []
            for stamp in filter(None, stamps):
                if getattr(locked, stamp) is None:
                    setattr(locked, stamp, now)
                    stamped.append(stamp)
            locked.status = status
            locked.save()
            verb = "Reopened" if reopening else "Closed without resolving" if skipped_resolution else "Status changed"
            body = f"{verb}: **{current}** → **{status}**"
            if note.strip():
                body += f"\n\n{note.strip()}"
            event = TimelineEvent.record(locked, kind=EventKind.STATUS_CHANGE, author=by, body=body, occurred_at=now)
            signals.incident_status_changed.send(
                sender=type(self), incident=locked, previous=current, status=status, by=by, event=event
            )
            if (status == Status.RESOLVED or skipped_resolution) and not locked.is_test:
                PostIncidentReview.open_for(locked, by=by)
            severity, detected_at = locked.severity, locked.detected_at
            for stamp in stamped:
                transaction.on_commit(
                    lambda stamp=stamp: metrics.observe_incident_stamp(
                        stamp, severity=severity, detected_at=detected_at, at=now
                    )
                )
        self.refresh_from_db()
        return self

    def take_command(self, *, by, reason: str) -> bool:
        """`by` becomes commander if the incident has none (an on-call person acknowledging)."""
        with transaction.atomic():
            locked = type(self).objects.select_for_update().get(pk=self.pk)
            if locked.commander_id is not None:
                return False
            locked.commander = by
            locked.save(update_fields=["commander", "updated_at"])
            TimelineEvent.record(locked, kind=EventKind.ACTION, author=by, body=f"{_user_name(by)} {reason}")
        self.commander = by
        return True

    @property
    def customer_facing_services(self) -> list:
        return [s for s in self.services.all() if s.public]

    @property
    def default_public_title(self) -> str:
        """A neutral title for customers, from the public services (never the internal title)."""
        names = [s.name for s in self.customer_facing_services]
        return f"Problems with {', '.join(names)}" if names else "Service disruption"

    @property
    def should_publish(self) -> bool:
        """An open SEV1/SEV2 on a public service that customers cannot see yet."""
        return (
            not self.public
            and self.is_open
            and self.severity in (Severity.SEV1, Severity.SEV2)
            and bool(self.customer_facing_services)
        )

    def set_public(self, *, by, public: bool, public_title: str | None = None, public_message: str | None = None):
        """Show the incident on the public status page (under its public title), take it off, or
        change what customers read; the timeline records it."""
        with transaction.atomic():
            locked = type(self).objects.select_for_update().get(pk=self.pk)
            texts = {}
            if public:
                title = (public_title if public_title is not None else locked.public_title).strip()
                texts["public_title"] = title or locked.default_public_title
                if public_message is not None:
                    texts["public_message"] = public_message.strip()
            changed_text = {k: v for k, v in texts.items() if getattr(locked, k) != v}
            if locked.public == public and not changed_text:
                state = "already on" if public else "not on"
                raise InvalidTransition(f"{locked.reference} is {state} the public status page.")
            was_public = locked.public
            locked.public = public
            for field, value in changed_text.items():
                setattr(locked, field, value)
            locked.full_clean(exclude=["started_at"])
            locked.save(update_fields=["public", "public_title", "public_message", "updated_at"])
            if public and was_public:
                body = f"Public text changed; customers now read: **{locked.public_title}**"
            elif public:
                body = (
                    f"Published on the public status page as **{locked.public_title}**: communication entries "
                    "written from now on or before are shown there as updates."
                )
            else:
                body = "Removed from the public status page."
            # An action, not a communication: system entries are never shown publicly.
            TimelineEvent.record(locked, kind=EventKind.ACTION, author=by, body=body)
        self.refresh_from_db()
        return self

    def update_details(self, *, by, services=None, **changes) -> list[str]:
        """Change title, summary, severity, roles, start time or services; one system event lists the changes."""
        allowed = {"title", "summary", "severity", "started_at", "detected_at", *ROLE_FIELDS}
        unknown = set(changes) - allowed
        if unknown:
            raise DomainError(f"These fields cannot be changed here: {', '.join(sorted(unknown))}.")
        with transaction.atomic():
            locked = type(self).objects.select_for_update().get(pk=self.pk)
            lines = []
            for field, value in changes.items():
                old = getattr(locked, field)
                if old == value:
                    continue
                setattr(locked, field, value)
                lines.append(_describe_change(field, old, value))
            if services is not None:
                before = set(locked.services.all())
                after = set(services)
                if before != after:
                    locked.services.set(after)
                    names = ", ".join(sorted(s.name for s in after)) or "none"
                    lines.append(f"Affected services: {names}")
            if lines:
                locked.full_clean(exclude=["started_at"])
                locked.save()
                TimelineEvent.record(
                    locked,
                    kind=EventKind.NOTE if set(changes) <= {"summary"} else EventKind.ACTION,
                    author=by,
                    body="\n".join(f"- {line}" for line in lines),
                )
                signals.incident_details_changed.send(sender=type(self), incident=locked, changes=changes, by=by)
        self.refresh_from_db()
        return lines


def _describe_change(field: str, old, new) -> str:
    label = field.replace("_", " ").capitalize()
    if field in ROLE_FIELDS:
        return f"{label}: {_user_name(new) if new else 'unassigned'}"
    if field == "summary":
        return "Summary updated"
    if field.endswith("_at"):
        return f"{label}: {new.isoformat() if new else 'cleared'}"
    return f"{label}: {old} → {new}"


def _user_name(user) -> str:
    return user.get_full_name() or user.get_username()


class TimelineEventQuerySet(models.QuerySet):
    def visible(self):
        return self.filter(deleted_at__isnull=True)

    def for_display(self):
        return self.select_related("author", "edited_by", "deleted_by")


def capped(body: str) -> str:
    """`body` within TIMELINE_BODY_MAX_LENGTH, ending with a note of how much was left out."""
    limit = settings.TIMELINE_BODY_MAX_LENGTH
    if len(body) <= limit:
        return body
    kept = limit - 64  # room for the note
    return body[:kept] + f"\n\n… ({len(body) - kept:,} more characters left out)"


class TimelineEvent(models.Model):
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="events")
    occurred_at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=16, choices=EventKind.choices, default=EventKind.NOTE)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    body = models.TextField(validators=[MaxLengthValidator(settings.TIMELINE_BODY_MAX_LENGTH)])
    body_html = models.TextField(editable=False, default="")
    annotation = models.TextField(
        blank=True,
        validators=[MaxLengthValidator(settings.TIMELINE_BODY_MAX_LENGTH)],
        help_text="A responder's note on a system event (system events themselves are not editable).",
    )
    annotation_html = models.TextField(editable=False, default="")
    pinned = models.BooleanField(default=False)
    source = models.CharField(max_length=8, choices=EventSource.choices, default=EventSource.MANUAL)
    # Two guards, so one person's annotation or pin never refuses another's text edit: `version`
    # guards the entry (text, kind, time, deletion), `annotation_version` the annotation. Pinning
    # changes neither.
    version = models.PositiveIntegerField(default=1)
    annotation_version = models.PositiveIntegerField(default=1)

    created_at = models.DateTimeField(auto_now_add=True)
    # Any change at all (pinning too): what the live incident page compares.
    updated_at = models.DateTimeField(auto_now=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    edited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    deleted_at = models.DateTimeField(null=True, blank=True)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = TimelineEventQuerySet.as_manager()

    class Meta:
        ordering = ["occurred_at", "id"]
        indexes = [
            # The timeline of one incident in time order.
            models.Index(fields=["incident", "occurred_at", "id"], name="event_timeline_idx"),
            # Pinned events become a review's key moments.
            models.Index(fields=["incident"], name="event_pinned_idx", condition=Q(pinned=True)),
            # The live incident page: the latest change to one incident's timeline.
            models.Index(fields=["incident", "updated_at"], name="event_live_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.incident.reference} {self.kind} @ {self.occurred_at:%Y-%m-%d %H:%M}"

    def save(self, *args, **kwargs):
        self.body_html = render_markdown(self.body)
        self.annotation_html = render_markdown(self.annotation)
        super().save(*args, **kwargs)

    @property
    def is_system(self) -> bool:
        return self.source == EventSource.SYSTEM

    @property
    def dom_id(self) -> str:
        return f"event-{self.pk}"

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    # --- verbs ----------------------------------------------------------------------------

    @classmethod
    def record(cls, incident, *, kind, body, author=None, occurred_at=None) -> "TimelineEvent":
        """A system event: written by the portal itself, never edited afterwards.

        Bodies built from what others sent (alert labels, annotations, values) are held to the
        same length as a person's entry: cut, and the cut said.
        """
        return cls.objects.create(
            incident=incident,
            kind=kind,
            body=capped(body),
            author=author,
            occurred_at=occurred_at or timezone.now(),
            source=EventSource.SYSTEM,
        )

    @classmethod
    def add_note(cls, incident, *, by, body, kind=EventKind.NOTE, occurred_at=None, pinned=False):
        """A responder's entry; may be backdated."""
        event = cls(
            incident=incident,
            kind=kind,
            body=body,
            author=by,
            occurred_at=occurred_at or timezone.now(),
            pinned=pinned,
            source=EventSource.MANUAL,
        )
        event.full_clean(exclude=["incident", "author"])
        event.save()
        return event

    def _lock(self, version: int | None, *, annotation_version: int | None = None) -> "TimelineEvent":
        locked = type(self).objects.select_for_update().get(pk=self.pk)
        stale = (version is not None and int(version) != locked.version) or (
            annotation_version is not None and int(annotation_version) != locked.annotation_version
        )
        if stale:
            raise StaleVersion(
                "Someone else edited this entry since you opened it; their text is shown, "
                "copy what you need and edit again.",
                current_version=locked.version,
                current_annotation_version=locked.annotation_version,
                current_body=locked.body,
                current_annotation=locked.annotation,
            )
        return locked

    def _snapshot(self, locked: "TimelineEvent", action: str, by) -> None:
        TimelineEventRevision.objects.create(
            event=locked,
            version=locked.version,
            annotation_version=locked.annotation_version,
            action=action,
            body=locked.body,
            annotation=locked.annotation,
            kind=locked.kind,
            occurred_at=locked.occurred_at,
            pinned=locked.pinned,
            edited_by=by,
        )

    def _commit(self, locked: "TimelineEvent", by, *, guard: str = "version") -> "TimelineEvent":
        setattr(locked, guard, getattr(locked, guard) + 1)
        locked.edited_at = timezone.now()
        locked.edited_by = by
        locked.full_clean(exclude=["incident", "author", "edited_by", "deleted_by"])
        locked.save()
        self.refresh_from_db()
        return self

    def edit(self, *, by, version: int | None, body=None, kind=None, occurred_at=None, pinned=None):
        """Change a manual entry. Content changes need the version the editor saw; pinning needs none
        and leaves the version alone (it is not the text)."""
        content = {"body": body, "kind": kind, "occurred_at": occurred_at}
        content = {k: v for k, v in content.items() if v is not None}
        if content and version is None:
            raise DomainError("version is required when changing an entry, to avoid overwriting someone else's edit.")
        with transaction.atomic():
            locked = self._lock(version)
            if locked.is_deleted:
                raise DomainError("This entry is deleted; restore it before editing.")
            if content and locked.is_system:
                raise DomainError("System entries cannot be edited; add an annotation instead.")
            changed = {k: v for k, v in content.items() if getattr(locked, k) != v}
            if pinned is not None and pinned != locked.pinned:
                locked.pinned = pinned
                locked.save(update_fields=["pinned", "updated_at"])
            if not changed:
                self.refresh_from_db()
                return self
            self._snapshot(locked, RevisionAction.EDIT, by)
            for field, value in changed.items():
                setattr(locked, field, value)
            return self._commit(locked, by)

    def set_pinned(self, *, by, pinned: bool) -> "TimelineEvent":
        """Mark (or unmark) a key moment. Not a change of the text: no version, no revision."""
        return self.edit(by=by, version=None, pinned=pinned)

    def annotate(self, *, by, annotation_version: int | None, annotation: str):
        if annotation_version is None:
            raise DomainError("annotation_version is required when annotating an entry.", field="annotation_version")
        with transaction.atomic():
            locked = self._lock(None, annotation_version=annotation_version)
            if locked.is_deleted:
                raise DomainError("This entry is deleted; restore it before annotating.")
            if locked.annotation == annotation:
                return self
            self._snapshot(locked, RevisionAction.ANNOTATE, by)
            locked.annotation = annotation
            return self._commit(locked, by, guard="annotation_version")

    def soft_delete(self, *, by):
        with transaction.atomic():
            locked = self._lock(None)
            if locked.is_system:
                raise DomainError("System entries are part of the record and cannot be deleted.")
            if locked.is_deleted:
                raise DomainError("This entry is already deleted.")
            self._snapshot(locked, RevisionAction.DELETE, by)
            locked.deleted_at = timezone.now()
            locked.deleted_by = by
            return self._commit(locked, by)

    def restore(self, *, by):
        with transaction.atomic():
            locked = self._lock(None)
            if not locked.is_deleted:
                raise DomainError("This entry is not deleted.")
            self._snapshot(locked, RevisionAction.RESTORE, by)
            locked.deleted_at = None
            locked.deleted_by = None
            return self._commit(locked, by)


class TimelineEventRevision(models.Model):
    """The state of an entry just before a change: nothing a responder wrote is ever lost."""

    event = models.ForeignKey(TimelineEvent, on_delete=models.CASCADE, related_name="revisions")
    version = models.PositiveIntegerField()
    annotation_version = models.PositiveIntegerField(default=1)
    action = models.CharField(max_length=8, choices=RevisionAction.choices)
    body = models.TextField()
    annotation = models.TextField(blank=True)
    kind = models.CharField(max_length=16, choices=EventKind.choices)
    occurred_at = models.DateTimeField()
    pinned = models.BooleanField(default=False)
    edited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # One snapshot per state of an entry: two writers cannot both replace the same text or annotation.
            models.UniqueConstraint(
                fields=["event", "version", "annotation_version"], name="revision_event_versions_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} v{self.version} {self.action}"
