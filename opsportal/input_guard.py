"""NUL characters refused at the door, for every page and endpoint alike.

PostgreSQL cannot store NUL in text or compare it in a query (`A string literal cannot contain
NUL (0x00) characters`), so a NUL that reached a lookup (a slug, a filter, a step parameter)
used to be a 500. This middleware answers 400 naming the first field that carries one, before
any view, form or serializer sees the request: the path, query parameters, form fields (names
and values) and JSON bodies (any depth; the field is named like `steps[0].params.sql`).

JSON bodies are inspected only when they contain the escape `\\u0000` (a raw NUL byte is not
valid JSON and its parser refuses it) and only up to DATA_UPLOAD_MAX_MEMORY_SIZE: larger bodies
are refused by their views' own limits.
"""

import json

from django.conf import settings
from django.http import JsonResponse

NUL = "\x00"


def _json_field(value, path: str = "") -> str | None:
    """The dotted path of the first string (or key) holding NUL, or None."""
    if isinstance(value, str):
        return path or "body" if NUL in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{key}" if path else str(key)
            if NUL in str(key):
                return name
            found = _json_field(item, name)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _json_field(item, f"{path}[{index}]")
            if found:
                return found
    return None


def _query_field(query) -> str | None:
    for key, values in query.lists():
        if NUL in key or any(NUL in value for value in values):
            return key.replace(NUL, "\\0")
    return None


def field_with_nul(request) -> str | None:
    if NUL in request.path:
        return "path"
    found = _query_field(request.GET)
    if found:
        return found
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    content_type = request.content_type or ""
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return _query_field(request.POST)
    if content_type.endswith("json"):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return None
        if 0 < length <= settings.DATA_UPLOAD_MAX_MEMORY_SIZE and b"\\u0000" in request.body:
            try:
                return _json_field(json.loads(request.body))
            except (ValueError, RecursionError):
                return None  # not JSON: the view's parser says so
    return None


class RefuseNulMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        field = field_with_nul(request)
        if field is not None:
            message = f"{field}: must not contain NUL characters (\\u0000)."
            return JsonResponse({"detail": message, "field": field}, status=400)
        return self.get_response(request)
