from rest_framework.routers import SimpleRouter

from runbooks.api.views import RunbookViewSet, RunViewSet

router = SimpleRouter()
router.register("runbooks", RunbookViewSet, basename="runbook")
router.register("runs", RunViewSet, basename="run")

urlpatterns = router.urls
