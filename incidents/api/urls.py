from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from incidents.api.intake import AlertIntakeView
from incidents.api.ops import RedeliverView
from incidents.api.views import IncidentViewSet, TimelineEventViewSet

router = SimpleRouter()
router.register("incidents", IncidentViewSet, basename="incident")
router.register(r"incidents/(?P<incident_pk>\d+)/timeline", TimelineEventViewSet, basename="timeline-event")

urlpatterns = [
    *router.urls,
    path("integrations/<str:kind>/<str:token>/", AlertIntakeView.as_view(), name="alert-intake"),
    re_path(r"^ops/webhooks/redeliver/?$", RedeliverView.as_view(), name="webhook-redeliver"),
]
