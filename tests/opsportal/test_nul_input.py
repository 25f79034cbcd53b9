"""A NUL character anywhere in a request is a 400 naming the field, on every kind of endpoint, before
any lookup (PostgreSQL refuses NUL in text, which used to surface as a 500)."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from incidents.models import Incident, ProblemReport
from ops.models import ActionRequest
from runbooks.models import Runbook
from tests.factories import IncidentFactory, ServiceFactory

pytestmark = pytest.mark.django_db


def refused(response, field: str) -> None:
    assert response.status_code == 400, response.content[:500]
    body = response.json()
    assert body["field"] == field
    assert body["detail"] == f"{field}: must not contain NUL characters (\\u0000)."


def test_public_report_service(db):
    ServiceFactory(name="Checkout", slug="checkout", public=True)
    body = {"name": "Jane", "email": "jane@example.com", "service": "check\u0000out", "description": "Spinning."}
    refused(APIClient(REMOTE_ADDR="203.0.113.200").post("/api/public/reports/", body, format="json"), "service")
    assert not ProblemReport.objects.exists()


def test_public_report_form_on_the_status_page(db):
    form = {"name": "Jane", "email": "jane@example.com", "service": "checkout\x00", "description": "Spinning."}
    refused(Client(REMOTE_ADDR="203.0.113.201").post("/status/report/", form), "service")
    assert not ProblemReport.objects.exists()


@pytest.mark.parametrize(
    "url", ["/api/incidents/?service=check%00out", "/api/incidents/?search=%00", "/api/reports/?status=new%00"]
)
def test_list_filters(api_for, url):
    refused(api_for("viewer").get(url), url.split("?")[1].split("=")[0])


def test_portal_list_filters(client, viewer):
    client.force_login(viewer)
    refused(client.get("/incidents/?service=%00"), "service")


def test_incident_api_fields(api_for, responder):
    api = api_for("responder")
    refused(api.post("/api/incidents/", {"title": "x", "services": ["a\u0000"]}, format="json"), "services[0]")
    assert not Incident.objects.exists()
    incident = IncidentFactory(title="Checkout 5xx", created_by=responder)
    patched = api.patch(f"/api/incidents/{incident.pk}/", {"commander": "alice\u0000"}, format="json")
    refused(patched, "commander")
    refused(api.post(f"/api/incidents/{incident.pk}/timeline/", {"body": "a\u0000b"}, format="json"), "body")


def test_runbook_step_params(api_for):
    payload = {
        "title": "Redis memory",
        "sections": [{"title": "Diagnose", "kind": "diagnostics"}],
        "steps": [{"title": "Memory", "kind": "automated", "action": "redis_check", "params": {"check": "info\u0000"}}],
    }
    refused(api_for("admin").post("/api/runbooks/", payload, format="json"), "steps[0].params.check")
    assert not Runbook.objects.exists()


def test_ops_action_request_service(api_for):
    api = api_for("admin")
    body = {"action": "remove_task", "params": {"ids": [1]}, "reason": "poison", "service": "checkout\u0000"}
    refused(api.post("/api/ops/requests", body, format="json"), "service")
    refused(api.post("/api/ops/requests?service=checkout%00", {"action": "remove_task"}, format="json"), "service")
    form = {"action": "remove_task", "service": "checkout\x00"}
    refused(api.post("/api/ops/requests", form), "service")
    assert not ActionRequest.objects.exists()


def test_a_nul_in_the_path_or_a_field_name(api_for):
    refused(api_for("viewer").get("/api/runbooks/a%00b/"), "path")
    refused(api_for("viewer").get("/api/incidents/?se%00rvice=x"), "se\\0rvice")


def test_clean_input_is_untouched(api_for):
    assert api_for("viewer").get("/api/incidents/?service=checkout").status_code in (200, 400)
    assert api_for("viewer").get("/api/incidents/?search=%5Cu0000").status_code == 200  # the text, not a NUL
