from django.urls import path

from incidents.views import calendars, integrations, notification_rules, paging, reports, reviews, schedules, status
from incidents.views import incidents as views

app_name = "incidents"

urlpatterns = [
    path("", views.incident_list, name="list"),
    path("new/", views.declare, name="declare"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/live/", views.live_poll, name="live"),
    path("<int:pk>/header/", views.header, name="header"),
    path("<int:pk>/alerts/", views.alerts, name="alerts"),
    path("<int:pk>/timeline/entries/", views.timeline_entries, name="timeline_entries"),
    path("<int:pk>/transition/", views.transition, name="transition"),
    path("<int:pk>/details/", views.update_details, name="update_details"),
    path("<int:pk>/timeline/", views.timeline, name="timeline"),
    path("<int:pk>/timeline/earlier/", views.timeline_earlier, name="timeline_earlier"),
    path("<int:pk>/timeline/add/", views.add_entry, name="add_entry"),
    path("<int:pk>/timeline/<int:event_id>/", views.event_fragment, name="event"),
    path("<int:pk>/timeline/<int:event_id>/edit/", views.edit_entry, name="edit_entry"),
    path("<int:pk>/timeline/<int:event_id>/delete/", views.delete_entry, name="delete_entry"),
    path("<int:pk>/timeline/<int:event_id>/restore/", views.restore_entry, name="restore_entry"),
    path("<int:pk>/timeline/<int:event_id>/pin/", views.pin_entry, name="pin_entry"),
    path("<int:pk>/timeline/<int:event_id>/revisions/", views.revisions, name="revisions"),
    path("<int:pk>/public/", status.publish, name="publish"),
    path("page/<str:token>/", paging.page_link, name="page_link"),
    path("<int:pk>/public/preview/", status.preview, name="publish_preview"),
    path("schedules/", schedules.schedule_list, name="schedules"),
    path("schedules/<int:pk>/", schedules.schedule_detail, name="schedule"),
    path("schedules/people/<str:username>/", schedules.person_shifts, name="person_shifts"),
    path(
        "schedules/people/<str:username>/notifications/",
        notification_rules.notification_rules,
        name="notification_rules",
    ),
    path("schedules/people/<str:username>/notifications/test/", notification_rules.test_page, name="test_page"),
    path(
        "schedules/people/<str:username>/notifications/<int:rule_id>/",
        notification_rules.edit_notification_rule,
        name="edit_notification_rule",
    ),
    path(
        "schedules/people/<str:username>/notifications/<int:rule_id>/delete/",
        notification_rules.delete_notification_rule,
        name="delete_notification_rule",
    ),
    path("schedules/<int:pk>/feeds/", calendars.new_schedule_feed, name="new_schedule_feed"),
    path("schedules/<int:pk>/import/", calendars.import_ics, name="import_ics"),
    path("schedules/people/<str:username>/feeds/", calendars.new_person_feed, name="new_person_feed"),
    path("schedules/feeds/<int:feed_id>/revoke/", calendars.revoke_feed, name="revoke_feed"),
    path("calendar/<str:token>.ics", calendars.calendar_feed, name="calendar_feed"),
    path("reports/", reports.report_list, name="reports"),
    path("reports/<int:pk>/escalate/", reports.escalate, name="escalate_report"),
    path("reports/<int:pk>/dismiss/", reports.dismiss, name="dismiss_report"),
]

# Mounted at reviews/ in the "reviews" namespace (opsportal/urls.py).
review_patterns = [
    path("", reviews.review_list, name="list"),
    path("<int:pk>/", reviews.review_page, name="detail"),
    path("<int:pk>/print/", reviews.review_print, name="print"),
    path("<int:pk>/save/", reviews.save_field, name="save_field"),
    path("<int:pk>/times/", reviews.override_time, name="override_time"),
    path("<int:pk>/action-items/", reviews.add_item, name="add_item"),
    path("<int:pk>/submit/", reviews.change_state, {"verb": "submit"}, name="submit"),
    path("<int:pk>/publish/", reviews.change_state, {"verb": "publish"}, name="publish"),
    path("<int:pk>/reopen/", reviews.change_state, {"verb": "reopen"}, name="reopen"),
    path("action-items/<int:item_id>/", reviews.update_item, name="update_item"),
]

# The admin pages of alert intake and outgoing webhooks, mounted at ops/ next to the console in
# the "alerting" namespace.
alerting_patterns = [
    path("integrations/", integrations.integrations, name="integrations"),
    path("integrations/<int:pk>/", integrations.integration, name="integration"),
    path("integrations/<int:pk>/test-alert/", integrations.send_test_alert, name="send_test_alert"),
    path("integrations/<int:pk>/rotate/", integrations.rotate_token, name="rotate_token"),
    path("webhooks/", integrations.webhooks, name="webhooks"),
    path("webhooks/deliveries/<int:pk>/redeliver/", integrations.redeliver, name="redeliver"),
]
