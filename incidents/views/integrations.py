"""Admin pages of the portal: alert integrations (create, rotate token, delivery log, send a test
alert) and webhook deliveries (inspect, redeliver). The same verbs as the Django admin and the API."""

import json
import logging

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db import DatabaseError
from django.db.models import OuterRef, Subquery
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from incidents.alerting import delivery_log, intake, selftest, sources
from incidents.choices import WebhookDeliveryState
from incidents.models import AlertDelivery, IntakeEvent, Integration, WebhookDelivery, WebhookEndpoint
from opsportal.errors import REFUSALS, status_of
from opsportal.roles import admin_required

logger = logging.getLogger(__name__)


class IntegrationForm(forms.ModelForm):
    class Meta:
        model = Integration
        fields = ["name", "kind", "default_service", "default_severity", "severity_mapping", "run_first_look"]
        widgets = {"severity_mapping": forms.Textarea(attrs={"rows": 3})}


def _latest(model) -> Subquery:
    """When the integration's latest `model` row (a delivery, a logged request) was received."""
    rows = model.objects.filter(integration=OuterRef("pk")).order_by("-id")
    return Subquery(rows.values("received_at")[:1])


def _integrations_page(request, form, *, created=None, status=200):
    # A subquery each: two Max() over the two reverse joins multiplied every delivery by every log row.
    integrations = list(
        Integration.objects.select_related("default_service").annotate(
            last_delivery_at=_latest(AlertDelivery), last_event_at=_latest(IntakeEvent)
        )
    )
    for integration in integrations:
        integration.last_received_at = max(
            filter(None, [integration.last_delivery_at, integration.last_event_at]), default=None
        )
    context = {"integrations": integrations, "form": form, "created": created}
    return render(request, "incidents/integrations/integrations.html", context, status=status)


@admin_required
@require_http_methods(["GET", "POST"])
def integrations(request):
    if request.method == "GET":
        return _integrations_page(request, IntegrationForm())
    form = IntegrationForm(request.POST)
    if not form.is_valid():
        return _integrations_page(request, form, status=400)
    integration = form.save(commit=False)
    integration.created_by = request.user
    token = integration.issue_token()
    integration.save()
    # Rendered, not redirected: the token exists only in this response.
    created = {"integration": integration, "url": integration.url(token)}
    return _integrations_page(request, IntegrationForm(), created=created, status=201)


@admin_required
@require_POST
def rotate_token(request, pk: int):
    integration = get_object_or_404(Integration, pk=pk)
    token = integration.rotate_token()
    created = {"integration": integration, "url": integration.url(token), "rotated": True}
    return _integrations_page(request, IntegrationForm(), created=created)


@admin_required
@require_GET
def integration(request, pk: int):
    integration = get_object_or_404(Integration.objects.select_related("default_service"), pk=pk)
    return _integration_page(request, integration)


def _integration_page(request, integration, *, error: str = "", status: int = 200):
    log = delivery_log.recent(integration)
    context = {
        "integration": integration,
        "log": log,
        "last_payload_json": json.dumps(log.last_payload, indent=2) if log.last_payload is not None else "",
        "can_test": selftest.can_send(integration),
        "resolve_after": settings.TEST_ALERT_RESOLVE_AFTER_SECONDS,
        "error": error,
    }
    if request.htmx and request.method == "GET":
        return render(request, "incidents/partials/integration_log.html", context, status=status)
    return render(request, "incidents/integrations/integration.html", context, status=status)


@admin_required
@require_POST
def send_test_alert(request, pk: int):
    """Send a test alert through the real intake; the page then shows it in the delivery log."""
    integration = get_object_or_404(Integration.objects.select_related("default_service"), pk=pk)
    try:
        delivery, resolution_queued = selftest.send_test_alert(integration, by=request.user)
    except REFUSALS as exc:
        return _integration_page(request, integration, error=str(exc), status=status_of(exc))
    except sources.PayloadError as exc:
        error = f"The intake refused the test payload: {exc}"
        return _integration_page(request, integration, error=error, status=400)
    except intake.QueueUnavailable:
        error = (
            "The test alert is stored but could not be queued; the worker picks it up when the queue is back, "
            "and it then resolves itself a few minutes later than usual."
        )
        return _integration_page(request, integration, error=error, status=503)
    except DatabaseError:
        logger.exception("test alert of integration %s could not be stored", integration.pk)
        return _integration_page(request, integration, error="The database is unavailable; retry.", status=503)
    if not resolution_queued:
        messages.warning(
            request,
            f"Test alert sent (delivery #{delivery.pk}): a [TEST] incident opens when the worker applies it "
            "and pages nobody. Its resolution could not be queued: it resolves itself a few minutes later "
            "than usual, once the queue answers.",
        )
        return redirect("alerting:integration", pk=integration.pk)
    messages.success(
        request,
        f"Test alert sent (delivery #{delivery.pk}): a [TEST] incident opens when the worker applies it, "
        f"pages nobody, and resolves itself in {settings.TEST_ALERT_RESOLVE_AFTER_SECONDS} s.",
    )
    return redirect("alerting:integration", pk=integration.pk)


@admin_required
@require_GET
def webhooks(request):
    state = request.GET.get("state", "")
    deliveries = WebhookDelivery.objects.select_related("endpoint", "incident")
    if state in WebhookDeliveryState.values:
        deliveries = deliveries.filter(state=state)
    page = Paginator(deliveries, 50).get_page(request.GET.get("page"))
    context = {
        "endpoints": WebhookEndpoint.objects.all(),
        "page": page,
        "states": WebhookDeliveryState.choices,
        "state": state,
    }
    return render(request, "incidents/integrations/webhooks.html", context)


@admin_required
@require_POST
def redeliver(request, pk: int):
    delivery = get_object_or_404(WebhookDelivery, pk=pk)
    error, status = "", 200
    try:
        delivery.redeliver(by=request.user)
    except REFUSALS as exc:
        error, status = str(exc), status_of(exc)
    delivery = WebhookDelivery.objects.select_related("endpoint", "incident").get(pk=pk)
    return render(
        request, "incidents/integrations/delivery_row.html", {"delivery": delivery, "error": error}, status=status
    )
