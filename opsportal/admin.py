from django.conf import settings
from django.contrib import admin
from django.contrib.auth.decorators import login_required

from opsportal.lockout import record_unlock
from opsportal.models import Lockout


@admin.register(Lockout)
class LockoutAdmin(admin.ModelAdmin):
    """Read-only rows; deleting one (or "Delete selected") unlocks the pair, logged and counted."""

    list_display = ["username", "ip_address", "failures_since_start", "locked", "expires_at", "attempt_time"]
    list_select_related = ["expiration"]
    search_fields = ["username", "ip_address"]
    ordering = ["-attempt_time"]
    fields = ["username", "ip_address", "failures_since_start", "locked", "expires_at", "attempt_time", "path_info"]
    readonly_fields = fields

    @admin.display(boolean=True, description="Locked")
    def locked(self, obj: Lockout) -> bool:
        return obj.is_locked(settings.AUTH_LOGIN_MAX_ATTEMPTS)

    @admin.display(description="Locked or counting until")
    def expires_at(self, obj: Lockout):
        return obj.expires_at

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        record_unlock(1, via="admin", username=obj.username, ip_address=obj.ip_address)

    def delete_queryset(self, request, queryset):
        rows = list(queryset.values_list("username", "ip_address"))
        super().delete_queryset(request, queryset)
        for username, ip_address in rows:
            record_unlock(1, via="admin", username=username, ip_address=ip_address)


# One sign-in page for everyone: the admin's own form would skip the per-IP limiter.
admin.site.login = login_required(admin.site.login)
