import pytest

from incidents.models import Incident
from tests.factories import IncidentFactory, ServiceFactory

pytestmark = pytest.mark.django_db

INCIDENT_FIELDS = {
    "id", "reference", "title", "summary", "severity", "status", "commander", "scribe", "communications_lead",
    "services", "started_at", "detected_at", "acknowledged_at", "mitigated_at", "resolved_at", "closed_at",
    "created_at", "updated_at", "public", "public_title", "public_message",
}  # fmt: skip


def test_list_uses_the_drf_page_format_and_the_contract_fields(api, incident):
    body = api.get("/api/incidents/").json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 1
    assert set(body["results"][0]) == INCIDENT_FIELDS
    assert body["results"][0]["reference"] == f"INC-{incident.pk}"


def test_list_filters_by_status_severity_service_and_search(api, responder):
    db = ServiceFactory(name="Postgres", slug="postgres")
    a = IncidentFactory(title="Replica lag", severity="SEV1", services=[db])
    b = IncidentFactory(title="Slow checkout", severity="SEV2")
    b.transition_to("acknowledged", by=responder)

    def refs(query):
        return [r["reference"] for r in api.get(f"/api/incidents/?{query}").json()["results"]]

    assert refs("status=acknowledged") == [b.reference]
    assert refs("severity=SEV1") == [a.reference]
    assert refs("service=postgres") == [a.reference]
    assert refs("search=checkout") == [b.reference]
    assert refs(f"search={a.reference}") == [a.reference]
    assert refs("status=triggered&status=acknowledged") == [b.reference, a.reference]


def test_unknown_filter_value_is_a_400(api):
    response = api.get("/api/incidents/?status=exploded")
    assert response.status_code == 400
    assert "status" in response.json()


def test_pagination(api):
    for n in range(30):
        IncidentFactory(title=f"i{n}")
    page1 = api.get("/api/incidents/").json()
    assert page1["count"] == 30 and len(page1["results"]) == 25 and page1["next"]
    page2 = api.get(page1["next"]).json()
    assert len(page2["results"]) == 5 and page2["next"] is None


def test_create_declares_an_incident_with_roles_and_services(api, responder2):
    ServiceFactory(name="API", slug="api")
    response = api.post(
        "/api/incidents/",
        {"title": "Checkout failing", "severity": "SEV1", "services": ["api"], "commander": "bob"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "triggered" and body["commander"] == "bob" and body["services"] == ["api"]
    incident = Incident.objects.get(pk=body["id"])
    assert incident.events.exclude(body__startswith="Nobody to page").count() == 1
    assert incident.created_by.username == "alice"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "title"),
        ({"title": ""}, "title"),
        ({"title": "x", "severity": "SEV9"}, "severity"),
        ({"title": "x", "severity": 3}, "severity"),
        ({"title": "x", "started_at": "yesterday"}, "started_at"),
        ({"title": "x", "services": ["nope"]}, "services"),
        ({"title": "x", "commander": "ghost"}, "commander"),
        ({"title": "x", "status": "resolved"}, "status"),
        ({"title": "x", "summary": "s" * 20_001}, "summary"),
        ({"title": ["not", "a", "string"]}, "title"),
    ],
)
def test_create_rejects_bad_input_with_the_field_named_and_writes_nothing(api, payload, field):
    response = api.post("/api/incidents/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert Incident.objects.count() == 0


def test_malformed_json_is_a_400(api):
    response = api.post("/api/incidents/", '{"title": "x"', content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


def test_non_object_json_is_a_400(api):
    response = api.post("/api/incidents/", "[1, 2]", content_type="application/json")
    assert response.status_code == 400


def test_patch_updates_details_and_records_them(api, incident):
    response = api.patch(
        f"/api/incidents/{incident.pk}/", {"severity": "SEV1", "title": "Checkout down"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["severity"] == "SEV1"
    assert "Severity: SEV3 → SEV1" in incident.events.order_by("-id").first().body


def test_patch_status_is_refused_with_a_pointer_to_transition(api, incident):
    response = api.patch(f"/api/incidents/{incident.pk}/", {"status": "resolved"}, format="json")
    assert response.status_code == 400
    assert "transition" in response.json()["status"][0]
    incident.refresh_from_db()
    assert incident.status == "triggered"


def test_put_and_delete_are_not_offered(api, incident):
    assert api.put(f"/api/incidents/{incident.pk}/", {"title": "x"}, format="json").status_code == 405
    assert api.delete(f"/api/incidents/{incident.pk}/").status_code == 405


def test_missing_incident_is_a_404(api):
    assert api.get("/api/incidents/999999/").status_code == 404
    assert api.post("/api/incidents/999999/transition/", {"to": "acknowledged"}, format="json").status_code == 404


def test_transition_returns_the_incident(api, incident):
    response = api.post(
        f"/api/incidents/{incident.pk}/transition/", {"to": "acknowledged", "note": "on it"}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "acknowledged" and body["acknowledged_at"]


def test_invalid_transition_is_a_409_with_detail(api, incident):
    api.post(f"/api/incidents/{incident.pk}/transition/", {"to": "mitigated"}, format="json")
    response = api.post(f"/api/incidents/{incident.pk}/transition/", {"to": "acknowledged"}, format="json")
    assert response.status_code == 409
    assert "Cannot move" in response.json()["detail"]


def test_repeated_acknowledgement_is_a_409_already_acknowledged(api, incident):
    api.post(f"/api/incidents/{incident.pk}/transition/", {"to": "acknowledged"}, format="json")
    response = api.post(f"/api/incidents/{incident.pk}/transition/", {"to": "acknowledged"}, format="json")
    assert response.status_code == 409
    assert "already acknowledged" in response.json()["detail"]


@pytest.mark.parametrize("payload", [{"to": "exploded"}, {}, {"to": ""}, {"to": "resolved", "note": "n" * 2001}])
def test_transition_bad_input_is_a_400(api, incident, payload):
    response = api.post(f"/api/incidents/{incident.pk}/transition/", payload, format="json")
    assert response.status_code == 400
    assert response.json()
    incident.refresh_from_db()
    assert incident.status == "triggered"


def test_schema_and_docs_are_served(api):
    schema = api.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/incidents/{id}/transition/" in schema.content
    assert api.get("/api/docs/").status_code == 200


def test_the_schema_has_no_warnings_or_errors():
    """Every endpoint documents its body and answers (drf-spectacular's own validation, warnings as errors)."""
    import subprocess
    import sys
    from pathlib import Path

    manage = Path(__file__).resolve().parents[2] / "manage.py"
    result = subprocess.run(
        [sys.executable, str(manage), "spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
