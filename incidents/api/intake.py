"""POST /api/integrations/{kind}/{token}/: the webhook an alert source (Alertmanager, Grafana, any
source registered in incidents/alerting/sources/) calls.

The token in the URL is the credential (Alertmanager's webhook_configs cannot sign requests).
The payload is validated once and stored before the answer, and applied by a worker; the request
costs one INSERT and one publish (the integration comes from the token cache, see
Integration.for_token):

- 202 stored and queued (also for a redelivery of a stored payload: nothing changes);
- 400 malformed JSON or wrong shape, naming the field; 404 unknown kind or token; 413 over
  ALERT_INTAKE_MAX_BODY_BYTES (16 MiB by default, room for a notification of 10 000 typical alerts;
  with or without Content-Length: a chunked body is read up to the same cap). There is no limit on
  the number of alerts or the length of the group key: Alertmanager drops a notification for good
  on a 4xx, so what it can send is stored and the worker applies it in chunks;
- 503 when the payload cannot be stored or queued, so Alertmanager retries.

Once the token names an integration, duplicates and refusals (400, 413) are logged on its page
(incidents/alerting/receive.py); an unknown token belongs to no integration and is not logged.
"""

import logging

from django.conf import settings
from django.db import DatabaseError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from incidents.alerting import intake, receive, sources
from incidents.models import Integration

logger = logging.getLogger(__name__)


class AlertIntakeView(APIView):
    authentication_classes = []  # the token in the URL authenticates; no session, so no CSRF
    permission_classes = [AllowAny]
    throttle_classes = []

    @extend_schema(
        parameters=[
            # The sources registered in incidents/alerting/sources/__init__.py, which registers them on import.
            OpenApiParameter("kind", OpenApiTypes.STR, OpenApiParameter.PATH, enum=sources.slugs()),
            OpenApiParameter("token", OpenApiTypes.STR, OpenApiParameter.PATH, description="The integration's token."),
        ],
        request={"application/json": {"type": "object"}},
        responses={
            202: OpenApiResponse(description="Stored and queued."),
            400: OpenApiResponse(description="Malformed JSON or wrong shape; `detail` names the field."),
            404: OpenApiResponse(description="Unknown kind or token."),
            413: OpenApiResponse(description="Body over ALERT_INTAKE_MAX_BODY_BYTES (16 MiB by default)."),
            503: OpenApiResponse(description="Could not be stored or queued; retry."),
        },
        summary="Alertmanager / Grafana webhook (payload version 4; Grafana's version 1)",
    )
    def post(self, request, kind: str, token: str):
        source = sources.get(kind)
        if source is None:
            return Response({"detail": f"Unknown integration kind {kind[:50]!r}."}, status=status.HTTP_404_NOT_FOUND)
        try:
            integration = Integration.for_token(kind, token)
        except DatabaseError:
            logger.exception("alert intake: database unavailable")
            return _unavailable("The database is unavailable.")
        if integration is None:
            return Response({"detail": "Unknown integration token."}, status=status.HTTP_404_NOT_FOUND)
        # From here the request is the integration's: what is refused shows in its delivery log.
        declared = _declared_length(request)
        if declared > settings.ALERT_INTAKE_MAX_BODY_BYTES:
            return _too_large(integration, declared)
        body = _read_body(request._request)
        if len(body) > settings.ALERT_INTAKE_MAX_BODY_BYTES:
            return _too_large(integration, len(body), body)
        try:
            delivery, created = receive.receive(integration, source, body)
        except sources.PayloadError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        except intake.QueueUnavailable:
            return _unavailable("The payload is stored but could not be queued.")
        except DatabaseError:
            logger.exception("alert intake: payload could not be stored")
            return _unavailable("The payload could not be stored.")
        return Response(
            {
                "status": "accepted" if created else "duplicate",
                "delivery": delivery.pk,
                "alerts": delivery.alert_count,
            },
            status=status.HTTP_202_ACCEPTED,
        )


def _declared_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _read_body(request) -> bytes:
    """The raw body, at most ALERT_INTAKE_MAX_BODY_BYTES + 1 bytes of it: DRF's parsers never see it.

    A chunked request has no Content-Length, so Django's own stream reads it as empty; the
    server's input stream (gunicorn de-chunks it) is read then, with the same cap.
    """
    stream = request
    if not request.META.get("CONTENT_LENGTH") and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        stream = request.META["wsgi.input"]
    cap = settings.ALERT_INTAKE_MAX_BODY_BYTES
    parts, size = [], 0
    while size <= cap:
        part = stream.read(min(65_536, cap + 1 - size))
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


def _too_large(integration: Integration, size: int, body: bytes = b"") -> Response:
    detail = (
        f"The body is larger than {settings.ALERT_INTAKE_MAX_BODY_BYTES} bytes; "
        "lower max_alerts in Alertmanager or raise ALERT_INTAKE_MAX_BODY_BYTES."
    )
    receive.refuse(integration, detail, status_code=413, body=body, size=size)
    return Response({"detail": detail}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)


def _unavailable(message: str) -> Response:
    return Response(
        {"detail": f"{message} Retry later."},
        status=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "10"},
    )
