"""Admin pages of on-call schedules (layers with their participants inline, overrides), people's
notification rules and the pages sent (read-only: the notification log)."""

from django.contrib import admin

from incidents.models import LayerParticipant, NotificationRule, Page, Schedule, ScheduleLayer, ScheduleOverride


class LayerInline(admin.StackedInline):
    model = ScheduleLayer
    extra = 0
    show_change_link = True


class ParticipantInline(admin.TabularInline):
    model = LayerParticipant
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    list_display = ["name", "time_zone"]
    search_fields = ["name"]
    inlines = [LayerInline]


@admin.register(ScheduleLayer)
class ScheduleLayerAdmin(admin.ModelAdmin):
    list_display = ["name", "schedule", "priority", "shift_length", "shift_unit", "handoff_time"]
    list_filter = ["schedule"]
    inlines = [ParticipantInline]


@admin.register(ScheduleOverride)
class ScheduleOverrideAdmin(admin.ModelAdmin):
    list_display = ["schedule", "user", "starts_at", "ends_at", "note"]
    list_filter = ["schedule"]
    autocomplete_fields = ["user"]
    readonly_fields = ["created_by"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(NotificationRule)
class NotificationRuleAdmin(admin.ModelAdmin):
    list_display = ["user", "channel", "endpoint", "delay_minutes"]
    list_filter = ["channel"]
    autocomplete_fields = ["user"]


@admin.register(Page)
class PageAdmin(admin.ModelAdmin):
    list_display = ["incident", "step", "recipient", "via", "channel", "state", "created_at", "link_used_at"]
    list_filter = ["purpose", "state", "channel", "level"]
    list_select_related = ["incident", "user"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
