import contextlib
import zoneinfo
from urllib.parse import unquote

from django.utils import timezone


class UserTimezoneMiddleware:
    """Shows times in the browser's time zone: static/js/portal.js stores it in the `tz` cookie."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        timezone.deactivate()
        name = unquote(request.COOKIES.get("tz", ""))
        if name:
            with contextlib.suppress(zoneinfo.ZoneInfoNotFoundError, ValueError):
                timezone.activate(zoneinfo.ZoneInfo(name))
        return self.get_response(request)
