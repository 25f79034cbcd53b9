"""Admin pages of the portal: alert integrations (create, rotate token) and webhook deliveries
(inspect, redeliver). The same verbs as the Django admin and the API."""

from django import forms
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from incidents.choices import WebhookDeliveryState
from incidents.models import Integration, WebhookDelivery, WebhookEndpoint
from opsportal.errors import REFUSALS, status_of
from opsportal.roles import admin_required


class IntegrationForm(forms.ModelForm):
    class Meta:
        model = Integration
        fields = ["name", "kind", "default_service", "default_severity", "severity_mapping", "run_first_look"]
        widgets = {"severity_mapping": forms.Textarea(attrs={"rows": 3})}


def _integrations_page(request, form, *, created=None, status=200):
    integrations = Integration.objects.select_related("default_service")
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
