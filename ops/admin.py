from django.contrib import admin, messages

from ops import admin_schedule  # noqa: F401 - the beat schedule's pages, for admins only
from ops.models import ActionRequest, AuditRecord, FailedTask, MaintenanceSwitch, RetentionRun
from opsportal.errors import DomainError


@admin.register(AuditRecord)
class AuditRecordAdmin(admin.ModelAdmin):
    list_display = [
        "created_at", "action", "safety", "actor", "approved_by", "via", "target", "dry_run", "ok", "summary",
    ]  # fmt: skip
    list_filter = ["action", "safety", "via", "ok", "dry_run"]
    search_fields = ["action", "target", "summary"]
    list_select_related = ["actor", "approved_by"]
    date_hierarchy = "created_at"

    # The audit trail is written by the actions only.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(FailedTask)
class FailedTaskAdmin(admin.ModelAdmin):
    list_display = ["failed_at", "name", "queue", "exception", "requeued_at", "removed_at"]
    list_filter = ["name", "queue"]
    search_fields = ["task_id", "name", "exception"]
    readonly_fields = [f.name for f in FailedTask._meta.fields]
    actions = ["requeue"]

    @admin.action(description="Requeue the selected failed tasks")
    def requeue(self, request, queryset):
        try:
            rows = FailedTask.requeue(list(queryset.values_list("pk", flat=True)), by=request.user)
        except DomainError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, f"Requeued {len(rows)} task(s).")

    def has_add_permission(self, request):
        return False


@admin.register(MaintenanceSwitch)
class MaintenanceSwitchAdmin(admin.ModelAdmin):
    list_display = ["enabled", "message", "changed_by", "changed_at"]
    readonly_fields = ["enabled", "changed_by", "changed_at"]

    def has_add_permission(self, request):
        return False


@admin.register(RetentionRun)
class RetentionRunAdmin(admin.ModelAdmin):
    list_display = ["started_at", "dry_run", "retention_days", "duration_ms", "counts", "started_by"]
    readonly_fields = [f.name for f in RetentionRun._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(ActionRequest)
class ActionRequestAdmin(admin.ModelAdmin):
    """Read-only: requests are decided in the ops console or the API, where the two-person rule holds."""

    list_display = ["requested_at", "action", "state", "requested_by", "decided_by", "reason", "summary"]
    list_filter = ["state", "action"]
    search_fields = ["action", "reason", "summary"]
    list_select_related = ["requested_by", "decided_by"]
    readonly_fields = [f.name for f in ActionRequest._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
