from rest_framework.routers import SimpleRouter

from incidents.api.views import IncidentViewSet, TimelineEventViewSet

router = SimpleRouter()
router.register("incidents", IncidentViewSet, basename="incident")
router.register(r"incidents/(?P<incident_pk>\d+)/timeline", TimelineEventViewSet, basename="timeline-event")

urlpatterns = router.urls
