from django.urls import path

from ops.views import console as console_views

app_name = "ops"

urlpatterns = [
    path("", console_views.console, name="console"),
    path("queues/", console_views.queues_card, name="queues"),
    path("queues/<str:queue>/<str:verb>/", console_views.queue_action, name="queue_action"),
    path("tasks/<int:pk>/<str:verb>/", console_views.failed_action, name="failed_action"),
    path("cache/", console_views.cache_card, name="cache"),
    path("cache/flush/", console_views.cache_flush, name="cache_flush"),
    path("requests/", console_views.requests_card, name="requests"),
    path("requests/ask/", console_views.ask, name="ask"),
    path("requests/<int:pk>/<str:verb>/", console_views.decide, name="decide"),
    path("health-check/", console_views.health_card, name="health"),
    path("health-check/run/", console_views.health_run, name="health_run"),
    path("maintenance/", console_views.maintenance, name="maintenance"),
    path("retention/", console_views.retention, name="retention"),
]
