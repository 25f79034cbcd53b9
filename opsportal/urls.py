from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from incidents import views as incident_views
from opsportal import health

api_patterns = [
    path("", include("incidents.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]

urlpatterns = [
    path("", incident_views.home, name="home"),
    path("health", health.health, name="health"),
    path("ready", health.ready, name="ready"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("incidents/", include("incidents.urls")),
    path("reviews/", include("incidents.review_urls")),
    path("api/", include(api_patterns)),
    path("admin/", admin.site.urls),
]
