from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from incidents.api.intake import AlertIntakeView
from incidents.api.reports import ProblemReportViewSet
from incidents.api.reviews import (
    ActionItemViewSet,
    IncidentReviewView,
    IncidentStatsView,
    ReviewExportView,
    ReviewViewSet,
)
from incidents.api.schedules import LayerViewSet, OverrideViewSet, ScheduleViewSet
from incidents.api.views import IncidentViewSet, TimelineEventViewSet
from incidents.api.webhooks import RedeliverView

router = SimpleRouter()
router.register("incidents", IncidentViewSet, basename="incident")
router.register(r"incidents/(?P<incident_pk>\d+)/timeline", TimelineEventViewSet, basename="timeline-event")
router.register("reviews", ReviewViewSet, basename="review")
router.register("action-items", ActionItemViewSet, basename="action-item")
router.register("reports", ProblemReportViewSet, basename="report")
router.register("schedules", ScheduleViewSet, basename="schedule")
router.register("schedule-layers", LayerViewSet, basename="schedule-layer")
router.register("schedule-overrides", OverrideViewSet, basename="schedule-override")

urlpatterns = [
    path("incidents/<int:pk>/review/", IncidentReviewView.as_view(), name="incident-review"),
    path("reviews/<int:pk>/export.md", ReviewExportView.as_view(), name="review-export"),
    path("stats/incidents/", IncidentStatsView.as_view(), name="incident-stats"),
    *router.urls,
    path("integrations/<str:kind>/<str:token>/", AlertIntakeView.as_view(), name="alert-intake"),
    re_path(r"^ops/webhooks/redeliver/?$", RedeliverView.as_view(), name="webhook-redeliver"),
]
