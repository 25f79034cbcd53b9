"""Admin for alert intake, escalation and notifications (imported by incidents/admin.py)."""

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from incidents.models import (
    Alert,
    AlertDelivery,
    AlertGroup,
    EscalationContact,
    EscalationPolicy,
    Integration,
    SlaClock,
    WebhookDelivery,
    WebhookEndpoint,
)
from incidents.notifications.registry import event_choices, webhook_format_choices
from opsportal.admin import AdminRoleRequired
from opsportal.errors import DomainError


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by the intake and the workers: inspected here, changed only through verbs."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def _show_urls(request, title: str, urls: list[tuple[Integration, str]]):
    return TemplateResponse(
        request,
        "admin/incidents/integration/token.html",
        {"title": title, "urls": urls, "opts": Integration._meta, **admin.site.each_context(request)},
    )


@admin.register(Integration)
class IntegrationAdmin(AdminRoleRequired, admin.ModelAdmin):
    list_display = ["name", "kind", "default_service", "default_severity", "run_first_look", "token_hint", "created_at"]
    list_filter = ["kind", "run_first_look"]
    search_fields = ["name"]
    readonly_fields = ["token_hint", "token_created_at", "created_by", "created_at"]
    actions = ["rotate_tokens"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
            request._integration_token = obj.issue_token()
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj, post_url_continue=None):
        # The token exists only in this response: show the URL instead of redirecting.
        url = obj.url(request._integration_token)
        return _show_urls(request, f"Integration {obj.name} created", [(obj, url)])

    @admin.action(description="Rotate the token of selected integrations (old URLs stop working)")
    def rotate_tokens(self, request, queryset):
        urls = [(integration, integration.url(integration.rotate_token())) for integration in queryset]
        self.message_user(request, f"Rotated {len(urls)} token(s).", level=messages.WARNING)
        return _show_urls(request, "New integration URLs", urls)


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["id", "integration", "state", "alert_count", "truncated_alerts", "received_at", "processed_at"]
    list_filter = ["state", "integration"]
    search_fields = ["group_key", "=id"]
    list_select_related = ["integration"]
    date_hierarchy = "received_at"


@admin.register(AlertGroup)
class AlertGroupAdmin(ReadOnlyAdmin):
    list_display = ["group_key", "integration", "incident", "updated_at"]
    list_filter = ["integration"]
    search_fields = ["group_key"]
    list_select_related = ["integration", "incident"]


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ["alertname", "status", "incident", "integration", "fingerprint", "starts_at", "ends_at"]
    list_filter = ["status", "integration"]
    search_fields = ["alertname", "fingerprint", "=incident__id"]
    list_select_related = ["incident", "integration"]
    date_hierarchy = "starts_at"


@admin.register(EscalationPolicy)
class EscalationPolicyAdmin(admin.ModelAdmin):
    list_display = ["severity", "ack_minutes", "resolve_minutes", "escalate_after_minutes", "max_level", "enabled"]
    list_editable = ["ack_minutes", "resolve_minutes", "escalate_after_minutes", "max_level", "enabled"]


@admin.register(EscalationContact)
class EscalationContactAdmin(admin.ModelAdmin):
    list_display = ["level", "target", "note"]
    list_filter = ["level"]
    autocomplete_fields = ["user"]
    list_select_related = ["user", "endpoint", "schedule"]


@admin.register(SlaClock)
class SlaClockAdmin(ReadOnlyAdmin):
    list_display = [
        "incident",
        "level",
        "ack_due_at",
        "acknowledged_at",
        "resolve_due_at",
        "ack_breached_at",
        "resolve_breached_at",
    ]
    list_select_related = ["incident"]


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https", help_text="http:// or https://")
    # Both read from the registries each time the form is shown: every app's events, every format.
    format = forms.ChoiceField(choices=webhook_format_choices, initial="json")
    events = forms.MultipleChoiceField(
        choices=event_choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=WebhookEndpoint._meta.get_field("events").help_text,
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["name", "url", "format", "secret", "events", "enabled"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(AdminRoleRequired, admin.ModelAdmin):
    """Events are ticked, not typed as JSON. The signing secret makes it admins' only."""

    form = WebhookEndpointForm
    list_display = ["name", "url", "format", "enabled", "created_at"]
    list_filter = ["format", "enabled"]
    search_fields = ["name", "url"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "event",
        "endpoint",
        "incident",
        "state",
        "attempts",
        "last_status_code",
        "next_retry_at",
        "created_at",
    ]
    list_filter = ["state", "event", "endpoint"]
    search_fields = ["=id", "=incident__id", "last_error"]
    list_select_related = ["endpoint", "incident"]
    actions = ["redeliver"]

    @admin.action(description="Redeliver selected deliveries now")
    def redeliver(self, request, queryset):
        done = 0
        for delivery in queryset:
            try:
                delivery.redeliver(by=request.user)
                done += 1
            except DomainError as exc:
                self.message_user(request, f"{delivery}: {exc}", level=messages.WARNING)
        self.message_user(request, f"{done} deliveries queued again.")
