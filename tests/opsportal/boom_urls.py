"""The portal's URLs plus one view that fails, for the exception metrics."""

from django.urls import include, path


def boom(request):
    raise ValueError("kaput for jane@example.com")


urlpatterns = [path("boom/", boom, name="boom"), path("", include("opsportal.urls"))]
