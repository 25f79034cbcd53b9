"""Admin pages for runbooks and runs. Content is read-only here: a runbook changes only through an
import or the API, which store a new version; runs change only through their verbs."""

from django.contrib import admin, messages

from opsportal.errors import DomainError
from runbooks.models import (
    Runbook,
    RunbookDocument,
    RunbookDraft,
    RunbookRun,
    RunbookStep,
    RunbookVersion,
    StepRun,
)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class VersionInline(ReadOnlyInline):
    model = RunbookVersion
    fields = ["number", "title", "severity", "note", "created_by", "created_at"]
    readonly_fields = fields


@admin.register(Runbook)
class RunbookAdmin(admin.ModelAdmin):
    list_display = ["title", "category", "severity", "owner", "document", "version", "updated_at"]
    list_filter = ["severity", "document", "services"]
    search_fields = ["title", "slug", "category", "alert_names"]
    list_select_related = ["document", "current_version"]
    filter_horizontal = ["services"]
    fields = [
        "slug",
        "title",
        "category",
        "alert_names",
        "severity",
        "owner",
        "services",
        "document",
        "current_version",
    ]
    readonly_fields = ["slug", "title", "category", "alert_names", "severity", "owner", "document", "current_version"]
    inlines = [VersionInline]

    def has_add_permission(self, request):
        return False


class StepInline(ReadOnlyInline):
    model = RunbookStep
    fields = ["order", "section", "title", "kind", "action", "params", "safety", "command", "expected"]
    readonly_fields = fields


@admin.register(RunbookVersion)
class RunbookVersionAdmin(admin.ModelAdmin):
    list_display = ["runbook", "number", "title", "created_by", "created_at", "note"]
    list_select_related = ["runbook", "created_by"]
    search_fields = ["title", "runbook__slug"]
    readonly_fields = [f.name for f in RunbookVersion._meta.fields]
    inlines = [StepInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(RunbookDocument)
class RunbookDocumentAdmin(admin.ModelAdmin):
    list_display = ["title", "key", "imported_at", "imported_by"]
    readonly_fields = ["key", "title", "sha256", "sections", "imported_at", "imported_by", "source"]

    def has_add_permission(self, request):
        return False


class StepRunInline(ReadOnlyInline):
    model = StepRun
    fields = ["order", "step", "state", "attempts", "started_at", "finished_at", "completed_by", "approved_by", "note"]
    readonly_fields = fields


@admin.register(RunbookRun)
class RunbookRunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "runbook",
        "version",
        "incident",
        "target",
        "state",
        "started_by",
        "created_at",
        "finished_at",
    ]
    list_filter = ["state", "forced"]
    search_fields = ["=id", "runbook__title", "=incident__id"]
    list_select_related = ["runbook", "version", "incident", "target", "started_by"]
    readonly_fields = [f.name for f in RunbookRun._meta.fields]
    inlines = [StepRunInline]
    actions = ["cancel_runs"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Cancel selected runs (stops before their next step)")
    def cancel_runs(self, request, queryset):
        done = 0
        for run in queryset:
            try:
                run.cancel(by=request.user)
                done += 1
            except DomainError as exc:
                self.message_user(request, f"{run}: {exc}", level=messages.WARNING)
        self.message_user(request, f"{done} runs cancelled or asked to stop.")


@admin.register(RunbookDraft)
class RunbookDraftAdmin(admin.ModelAdmin):
    """Drafts are edited and published from their portal page, where the review's note is shown."""

    list_display = ["runbook", "state", "note", "created_by", "created_at", "published_version"]
    list_filter = ["state"]
    search_fields = ["note", "runbook__title"]
    list_select_related = ["runbook", "created_by", "published_version"]
    readonly_fields = [f.name for f in RunbookDraft._meta.fields]

    def has_add_permission(self, request):
        return False
