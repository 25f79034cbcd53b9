"""Staff triage of problem reports: list, turn into an incident, attach, dismiss — by role."""

import pytest
from django.contrib.auth.models import Permission

from incidents.models import Incident, ProblemReport
from tests.factories import IncidentFactory, ServiceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def report(db):
    service = ServiceFactory(name="Checkout", slug="checkout", public=True)
    return ProblemReport.submit(
        name="Jane", email="jane@example.com", service=service, description="Pay button spins forever.\nSince 10:00."
    )


READS = {"anonymous": 403, "viewer": 200, "responder": 200, "admin": 200}
WRITES = {"anonymous": 403, "viewer": 403, "responder": 200, "admin": 200}


@pytest.mark.parametrize("role", READS)
def test_api_list_and_detail_by_role(api_for, report, role):
    listing = api_for(role).get("/api/reports/?status=new")
    assert listing.status_code == READS[role]
    if READS[role] == 200:
        # The reporter's name and e-mail are personal data: responders and admins only.
        reporter = ("Jane", "jane@example.com") if role != "viewer" else (None, None)
        row = listing.json()["results"][0]
        assert (row["name"], row["email"]) == reporter and row["description"].startswith("Pay button")
        detail = api_for(role).get(f"/api/reports/{report.pk}/").json()
        assert detail["reference"] == report.reference and (detail["name"], detail["email"]) == reporter


@pytest.mark.parametrize("role", WRITES)
def test_api_escalate_by_role(api_for, report, role):
    response = api_for(role).post(f"/api/reports/{report.pk}/escalate/", {"severity": "SEV2"}, format="json")
    assert response.status_code == WRITES[role]
    report.refresh_from_db()
    if WRITES[role] == 200:
        incident = Incident.objects.get(pk=response.json()["id"])
        assert report.status == "escalated" and report.incident == incident
        assert incident.severity == "SEV2" and incident.title == "Problem report: Pay button spins forever."
        assert list(incident.services.values_list("slug", flat=True)) == ["checkout"]
        event = incident.events.get(kind="alert")
        assert report.reference in event.body and "Pay button spins forever." in event.body
        assert "jane@example.com" not in event.body and "Jane" not in event.body  # viewers read timelines
    else:
        assert report.status == "new" and not Incident.objects.exists()


@pytest.mark.parametrize("role", WRITES)
def test_api_dismiss_by_role(api_for, report, role):
    response = api_for(role).post(f"/api/reports/{report.pk}/dismiss/", {"reason": "duplicate"}, format="json")
    assert response.status_code == WRITES[role]
    report.refresh_from_db()
    assert report.status == ("dismissed" if WRITES[role] == 200 else "new")


def test_attach_to_an_open_incident(api, report, responder):
    incident = IncidentFactory(title="Checkout outage")
    response = api.post(f"/api/reports/{report.pk}/escalate/", {"incident": incident.pk}, format="json")
    assert response.status_code == 200 and response.json()["id"] == incident.pk
    assert Incident.objects.count() == 1
    assert incident.events.filter(kind="alert", body__contains=report.reference).exists()
    assert incident.services.filter(slug="checkout").exists()


def test_a_closed_incident_cannot_take_reports(api, report, responder):
    incident = IncidentFactory()
    incident.transition_to("closed", by=responder, note="False page")
    response = api.post(f"/api/reports/{report.pk}/escalate/", {"incident": incident.pk}, format="json")
    assert response.status_code == 400 and "incident" in response.json()
    report.refresh_from_db()
    assert report.status == "new"


def test_a_report_is_triaged_once(api, report):
    assert api.post(f"/api/reports/{report.pk}/dismiss/", {}, format="json").status_code == 200
    response = api.post(f"/api/reports/{report.pk}/escalate/", {}, format="json")
    assert response.status_code == 409 and "already triaged" in response.json()["detail"]
    assert not Incident.objects.exists()


def test_bad_triage_input_is_400(api, report):
    assert api.post(f"/api/reports/{report.pk}/escalate/", {"severity": "SEV9"}, format="json").status_code == 400
    assert api.post(f"/api/reports/{report.pk}/dismiss/", {"reason": "x" * 501}, format="json").status_code == 400
    assert api.post("/api/reports/999999/dismiss/", {}, format="json").status_code == 404


@pytest.mark.parametrize("role", READS)
def test_portal_list_by_role(client, user_for, report, role):
    if user_for(role):
        client.force_login(user_for(role))
    response = client.get("/incidents/reports/")
    if role == "anonymous":
        assert response.status_code == 302
        return
    body = response.content.decode()
    assert response.status_code == 200 and report.reference in body and "Pay button spins forever." in body
    assert ("Turn into incident" in body) == (role in {"responder", "admin"})
    sees_reporter = role in {"responder", "admin"}  # personal data
    assert ("jane@example.com" in body) == sees_reporter and (">Jane<" in body) == sees_reporter
    assert ("Hidden" in body) == (not sees_reporter)


def test_the_admin_hides_the_reporter_from_staff_without_the_responder_role(client, report):
    from tests.factories import UserFactory

    staff = UserFactory(username="auditor", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["view_problemreport", "change_problemreport"]))
    client.force_login(staff)
    listing = client.get("/admin/incidents/problemreport/")
    assert listing.status_code == 200 and report.reference in listing.content.decode()
    assert "jane@example.com" not in client.get("/admin/incidents/problemreport/?q=jane").content.decode()
    assert "Jane" not in listing.content.decode()
    page = client.get(f"/admin/incidents/problemreport/{report.pk}/change/").content.decode()
    assert "Pay button spins forever." in page and "jane@example.com" not in page and "Jane" not in page
    assert report.reference not in client.get("/admin/incidents/problemreport/?q=jane").content.decode()


def test_the_admin_shows_the_reporter_to_admins(admin_client, report):
    page = admin_client.get(f"/admin/incidents/problemreport/{report.pk}/change/").content.decode()
    assert "jane@example.com" in page and "Jane" in page


@pytest.mark.parametrize("role", WRITES)
def test_portal_escalate_by_role(client, user_for, report, role):
    if user_for(role):
        client.force_login(user_for(role))
    response = client.post(f"/incidents/reports/{report.pk}/escalate/", {"severity": "SEV1", "title": "Pay down"})
    report.refresh_from_db()
    if WRITES[role] == 200:
        assert response.status_code == 302 and response["Location"] == f"/incidents/{report.incident_id}/"
        assert report.incident.title == "Pay down" and report.incident.severity == "SEV1"
    else:
        assert response.status_code in {302, 403} and report.status == "new"


def test_portal_dismiss_and_errors(client, responder, report):
    client.force_login(responder)
    bad = client.post(f"/incidents/reports/{report.pk}/escalate/", {"severity": "SEV9"})
    assert bad.status_code == 400 and "Check the incident and severity" in bad.content.decode()
    assert client.post(f"/incidents/reports/{report.pk}/dismiss/", {"reason": "spam"}).status_code == 302
    again = client.post(f"/incidents/reports/{report.pk}/dismiss/", {})
    assert again.status_code == 409 and "already triaged" in again.content.decode()
    listing = client.get("/incidents/reports/?status=dismissed").content.decode()
    assert "spam" in listing and report.reference in listing


def test_triage_list_queries_do_not_grow(client, responder, report, django_assert_max_num_queries):
    client.force_login(responder)

    def load():
        with django_assert_max_num_queries(12) as captured:
            assert client.get("/incidents/reports/?status=all").status_code == 200
        return len(captured.captured_queries)

    load()  # the session's idle-timeout write comes with the first request after sign-in
    few = load()
    for n in range(20):
        r = ProblemReport.submit(name=f"n{n}", email=f"n{n}@example.com", description="Something broke again")
        if n % 2:
            r.escalate(by=responder)
    assert load() == few
