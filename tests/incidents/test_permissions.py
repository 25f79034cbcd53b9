"""Every incident endpoint, for every role: who may read, who may change."""

import pytest

from incidents.models import Incident, TimelineEvent

pytestmark = pytest.mark.django_db

READ, WRITE = "read", "write"
EXPECTED = {
    # role: (status for reads, status for writes)
    "anonymous": (403, 403),
    "viewer": (200, 403),
    "responder": (200, None),
    "admin": (200, None),
}


@pytest.fixture
def objects(incident, responder):
    note = TimelineEvent.add_note(incident, by=responder, body="first")
    return incident, note


def endpoints(incident, note):
    base = f"/api/incidents/{incident.pk}"
    events = f"{base}/timeline"
    return [
        (READ, "get", "/api/incidents/", None, 200),
        (READ, "get", f"{base}/", None, 200),
        (READ, "get", f"{events}/", None, 200),
        (READ, "get", f"{events}/{note.pk}/", None, 200),
        (READ, "get", f"{events}/{note.pk}/revisions/", None, 200),
        (WRITE, "post", "/api/incidents/", {"title": "new"}, 201),
        (WRITE, "patch", f"{base}/", {"title": "renamed"}, 200),
        (WRITE, "post", f"{base}/transition/", {"to": "acknowledged"}, 200),
        (WRITE, "post", f"{events}/", {"body": "a note"}, 201),
        (WRITE, "patch", f"{events}/{note.pk}/", {"version": 1, "body": "edited"}, 200),
        (WRITE, "delete", f"{events}/{note.pk}/", None, 204),
    ]


@pytest.mark.parametrize("role", list(EXPECTED))
def test_every_endpoint_for_every_role(api_for, objects, role):
    client = api_for(role)
    read_status, write_status = EXPECTED[role]
    incident, note = objects
    for access, method, url, payload, ok_status in endpoints(*objects):
        expected = read_status if access == READ else (write_status or ok_status)
        response = getattr(client, method)(url, payload, format="json")
        assert response.status_code == expected, (role, method, url, response.content[:200])
        if expected == 403:
            assert response.json()["detail"]
    if role in {"anonymous", "viewer"}:
        assert Incident.objects.count() == 1
        incident.refresh_from_db()
        assert incident.title == "Checkout 5xx" and incident.status == "triggered"
        note.refresh_from_db()
        assert note.body == "first" and note.deleted_at is None


@pytest.mark.parametrize("role", list(EXPECTED))
def test_restore_for_every_role(api_for, objects, responder, role):
    incident, note = objects
    note.soft_delete(by=responder)
    response = api_for(role).post(f"/api/incidents/{incident.pk}/timeline/{note.pk}/restore/")
    assert response.status_code == (EXPECTED[role][1] or 200)


def test_token_auth_works_for_scripts(responder, incident):
    from rest_framework.test import APIClient

    from opsportal.models import ApiToken

    _, key = ApiToken.issue(responder)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/incidents/").status_code == 200
    response = client.post(f"/api/incidents/{incident.pk}/transition/", {"to": "acknowledged"}, format="json")
    assert response.status_code == 200
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert client.get("/api/incidents/").status_code == 403


def test_session_api_writes_need_csrf(responder, incident):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(responder)
    response = client.post(
        f"/api/incidents/{incident.pk}/transition/", {"to": "acknowledged"}, content_type="application/json"
    )
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_inactive_user_cannot_read(api_for, viewer):
    viewer.is_active = False
    viewer.save()
    assert api_for("viewer").get("/api/incidents/").status_code == 403
