from django.urls import path

from incidents import report_views, status_views, views

app_name = "incidents"

urlpatterns = [
    path("", views.incident_list, name="list"),
    path("new/", views.declare, name="declare"),
    path("<int:pk>/", views.detail, name="detail"),
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
    path("<int:pk>/public/", status_views.publish, name="publish"),
    path("reports/", report_views.report_list, name="reports"),
    path("reports/<int:pk>/escalate/", report_views.escalate, name="escalate_report"),
    path("reports/<int:pk>/dismiss/", report_views.dismiss, name="dismiss_report"),
]
