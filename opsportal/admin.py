from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.template.response import TemplateResponse
from rest_framework.authtoken.models import TokenProxy

from opsportal.lockout import record_unlock
from opsportal.models import ApiToken, Lockout
from opsportal.roles import is_admin


class AdminRoleRequired:
    """For admin pages holding credentials (API tokens, integrations, connection settings): the
    admin role is needed on top of the staff flag and model permissions, so a staff responder who
    was granted "view" or "change" on everything still sees none of it."""

    def has_module_permission(self, request) -> bool:
        return is_admin(request.user) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return is_admin(request.user) and super().has_view_permission(request, obj)

    def has_add_permission(self, request, *args) -> bool:
        return is_admin(request.user) and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None) -> bool:
        return is_admin(request.user) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return is_admin(request.user) and super().has_delete_permission(request, obj)


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ["user"]


@admin.register(ApiToken)
class ApiTokenAdmin(AdminRoleRequired, admin.ModelAdmin):
    """Issue (the key is shown once, on the page after "Save") and revoke (delete) API keys."""

    form = ApiTokenForm
    list_display = ["hint", "user", "created_at", "last_used_at"]
    list_select_related = ["user"]
    search_fields = ["user__username", "hint"]
    readonly_fields = ["hint", "created_at", "last_used_at"]
    autocomplete_fields = ["user"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a key is issued or revoked, never edited

    def save_model(self, request, obj, form, change):
        request._api_key = obj.new_key()
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj, post_url_continue=None):
        context = {
            "title": f"API key for {obj.user}",
            "key": request._api_key,
            "opts": ApiToken._meta,
            **self.admin_site.each_context(request),
        }
        return TemplateResponse(request, "admin/opsportal/apitoken/issued.html", context)


# DRF's own token admin would list the (now emptied) plain-text table.
admin.site.unregister(TokenProxy)


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
