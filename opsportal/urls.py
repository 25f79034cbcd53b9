from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from incidents.api.reports import create_report
from incidents.urls import alerting_patterns, review_patterns
from incidents.views import incidents as incident_views
from incidents.views import status as status_views
from opsportal import auth, health, metrics

api_patterns = [
    path("", include("incidents.api.urls")),
    path("", include("runbooks.api.urls")),
    path("", include("ops.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file, so the CSP needs no inline scripts.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("auth/token/", auth.TokenLoginView.as_view(), name="api-token"),
    path("public/reports/", create_report, name="public-report"),
]

urlpatterns = [
    path("", incident_views.home, name="home"),
    # Browsers and bookmark tools ask for /favicon.ico whatever the page's <link rel="icon"> says.
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True), name="favicon"),
    path("health", health.health, name="health"),
    path("ready", health.ready, name="ready"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("status/", status_views.status_page, name="status"),
    path("status/report/", status_views.submit_report, name="status-report"),
    path("accounts/login/", auth.LoginView.as_view(), name="login"),  # adds the limiter to Django's
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password_change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    # Django's reset URLs, behind opsportal.auth's guard: 404 unless e-mail is delivered, limited per IP.
    path("accounts/password_reset/", auth.PasswordResetView.as_view(), name="password_reset"),
    path("accounts/password_reset/done/", auth.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path("accounts/reset/<uidb64>/<token>/", auth.PasswordResetConfirmView.as_view(), name="password_reset_confirm"),
    path("accounts/reset/done/", auth.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("incidents/", include("incidents.urls")),
    path("ops/", include("ops.urls")),
    path("ops/", include((alerting_patterns, "alerting"))),
    path("reviews/", include((review_patterns, "reviews"))),
    path("runbooks/", include("runbooks.urls")),
    path("api/", include(api_patterns)),
    path("admin/", admin.site.urls),
]
