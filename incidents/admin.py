from django.contrib import admin, messages

from incidents.choices import Status
from incidents.models import Incident, ProblemReport, Service, TimelineEvent, TimelineEventRevision
from incidents.models.report import may_see_reporter
from opsportal.errors import REFUSALS, DomainError
from opsportal.roles import is_admin


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "owner_team", "public"]
    list_filter = ["public", "owner_team"]
    search_fields = ["name", "slug", "description", "owner_team"]
    prepopulated_fields = {"slug": ["name"]}
    fieldsets = [
        (None, {"fields": ["name", "slug", "description", "owner_team", "public"]}),
        (
            "Connection settings for runbook steps",
            {
                "fields": [
                    "base_url",
                    "database_url",
                    "redis_url",
                    "broker_url",
                    "prometheus_url",
                    "http_hosts",
                    "secret_names",
                ],
                "description": "A URL without a password, or env:NAME to read it from the workers' environment.",
            },
        ),
    ]

    def get_fieldsets(self, request, obj=None):
        # Connection settings name hosts and where credentials come from: admins only. Left out
        # of the form, they can be neither read nor changed by other staff.
        fieldsets = super().get_fieldsets(request, obj)
        return fieldsets if is_admin(request.user) else fieldsets[:1]


class TimelineEventInline(admin.TabularInline):
    model = TimelineEvent
    fields = ["occurred_at", "kind", "source", "author", "body", "pinned", "version", "deleted_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("author")


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    list_display = ["reference", "title", "severity", "status", "commander", "detected_at", "resolved_at"]
    list_filter = ["status", "severity", "services"]
    search_fields = ["title", "summary", "=id"]
    date_hierarchy = "detected_at"
    autocomplete_fields = ["commander", "scribe", "communications_lead"]
    filter_horizontal = ["services"]
    # Status and its timestamps move only through Incident.transition_to (portal, API).
    readonly_fields = [
        "status",
        "acknowledged_at",
        "mitigated_at",
        "resolved_at",
        "closed_at",
        "created_by",
        "created_at",
        "updated_at",
    ]
    list_select_related = ["commander"]
    actions = ["acknowledge", "resolve", "close"]

    @admin.display(description="Reference", ordering="id")
    def reference(self, obj):
        return obj.reference

    @admin.action(description="Acknowledge selected incidents")
    def acknowledge(self, request, queryset):
        self._transition(request, queryset, Status.ACKNOWLEDGED)

    @admin.action(description="Resolve selected incidents (opens their reviews)")
    def resolve(self, request, queryset):
        self._transition(request, queryset, Status.RESOLVED)

    @admin.action(description="Close selected resolved incidents")
    def close(self, request, queryset):
        # No reason can be given here: closing an unresolved incident is refused by the verb.
        self._transition(request, queryset, Status.CLOSED)

    def _transition(self, request, queryset, status):
        done = 0
        for incident in queryset:
            try:
                incident.transition_to(status, by=request.user)
                done += 1
            except REFUSALS as exc:
                self.message_user(request, f"{incident.reference}: {exc}", level=messages.WARNING)
        self.message_user(request, f"{done} incidents moved to {Status(status).label.lower()}.")


class RevisionInline(admin.TabularInline):
    model = TimelineEventRevision
    fields = ["version", "action", "body", "annotation", "edited_by", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(TimelineEvent)
class TimelineEventAdmin(admin.ModelAdmin):
    list_display = ["id", "incident", "occurred_at", "kind", "source", "author", "pinned", "version", "deleted_at"]
    list_filter = ["kind", "source", "pinned", ("deleted_at", admin.EmptyFieldListFilter)]
    search_fields = ["body", "annotation", "=incident__id"]
    list_select_related = ["incident", "author"]
    raw_id_fields = ["incident"]
    readonly_fields = [
        "body_html", "annotation_html", "version", "created_at", "edited_at", "edited_by", "deleted_at", "deleted_by",
    ]  # fmt: skip
    inlines = [RevisionInline]
    actions = ["soft_delete_events", "restore_events"]

    @admin.action(description="Delete selected entries (soft, can be restored)")
    def soft_delete_events(self, request, queryset):
        self._apply(request, queryset.filter(deleted_at__isnull=True), "soft_delete")

    @admin.action(description="Restore selected deleted entries")
    def restore_events(self, request, queryset):
        self._apply(request, queryset.filter(deleted_at__isnull=False), "restore")

    def _apply(self, request, queryset, verb):
        done = 0
        for event in queryset:
            try:
                getattr(event, verb)(by=request.user)
                done += 1
            except DomainError as exc:
                self.message_user(request, f"{event}: {exc}", level=messages.WARNING)
        self.message_user(request, f"{done} entries updated.")

    def get_readonly_fields(self, request, obj=None):
        # Once written, an entry changes only through its verbs, so the revision is kept.
        if obj is not None and obj.is_system:
            return [*self.readonly_fields, "incident", "source", "author", "body", "kind", "occurred_at"]
        if obj is not None:
            return [*self.readonly_fields, "incident", "source", "author"]
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)
            return
        edits = {f: form.cleaned_data[f] for f in ("body", "kind", "occurred_at") if f in form.changed_data}
        stored = TimelineEvent.objects.get(pk=obj.pk)
        if "pinned" in form.changed_data:
            stored.edit(by=request.user, version=None, pinned=obj.pinned)
        if "annotation" in form.changed_data:
            stored.annotate(by=request.user, version=stored.version, annotation=obj.annotation)
        if edits:
            stored.edit(by=request.user, version=stored.version, **edits)


@admin.register(TimelineEventRevision)
class TimelineEventRevisionAdmin(admin.ModelAdmin):
    list_display = ["event", "version", "action", "edited_by", "created_at"]
    list_filter = ["action"]
    search_fields = ["body", "=event__id"]
    list_select_related = ["event__incident", "edited_by"]

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ProblemReport)
class ProblemReportAdmin(admin.ModelAdmin):
    list_display = ["reference", "created_at", "name", "service", "status", "incident", "triaged_by"]
    list_filter = ["status", "service"]
    search_fields = ["name", "email", "description", "=id"]
    list_select_related = ["service", "incident", "triaged_by"]
    date_hierarchy = "created_at"
    # Triage goes through ProblemReport.escalate / dismiss (portal, API); admins can read and delete.
    readonly_fields = [
        "name", "email", "service", "description", "status", "incident", "triaged_by", "triaged_at",
        "dismiss_reason", "created_at",
    ]  # fmt: skip

    @admin.display(description="Reference", ordering="id")
    def reference(self, obj):
        return obj.reference

    def has_add_permission(self, request):
        return False

    # The reporter's name and e-mail are personal data: staff without the responder role (or admin)
    # neither see them nor find reports by them.
    def get_list_display(self, request):
        return self._without_reporter(request, super().get_list_display(request))

    def get_search_fields(self, request):
        return self._without_reporter(request, super().get_search_fields(request))

    def get_fields(self, request, obj=None):
        return self._without_reporter(request, super().get_fields(request, obj))

    def get_readonly_fields(self, request, obj=None):
        return self._without_reporter(request, super().get_readonly_fields(request, obj))

    @staticmethod
    def _without_reporter(request, names):
        if may_see_reporter(request.user):
            return names
        return [n for n in names if n not in ("name", "email")]


# Register the alert intake, notification and on-call schedule admins.
from incidents import admin_alerting, admin_schedules  # noqa: E402, F401
