"""An idle timeout that does not write the session row on every request.

SESSION_SAVE_EVERY_REQUEST moves the expiry with each request, at the cost of an UPDATE of the
session row (with its savepoint) on every page and API call. Here a signed-in session is saved
when it changed, or when its last save is older than SESSION_TOUCH_SECONDS: the expiry then moves
at most once a minute, so a session ends between SESSION_COOKIE_AGE minus that minute and
SESSION_COOKIE_AGE after the last request.
"""

import time

from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware

TOUCHED = "_touched"


def passive(view):
    """Marks a view a page calls by itself (a live poll): it is not activity, so it never moves the
    idle timeout, and an open tab alone does not keep a session alive."""
    view.passive_request = True
    return view


class IdleTimeoutSessionMiddleware(SessionMiddleware):
    def process_view(self, request, view_func, view_args, view_kwargs):
        request.passive_request = getattr(view_func, "passive_request", False)

    def process_response(self, request, response):
        session = getattr(request, "session", None)
        if getattr(request, "passive_request", False):
            return super().process_response(request, response)
        if session is not None and not session.is_empty():
            now = int(time.time())
            if now - session.get(TOUCHED, 0) >= settings.SESSION_TOUCH_SECONDS:
                session[TOUCHED] = now  # marks it modified: saved with a new expiry
        return super().process_response(request, response)
