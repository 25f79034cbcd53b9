"""Creating integrations: the command, the portal and the admin all show the full URL with its token, once."""

import re

import pytest
from django.core.management import CommandError, call_command

from incidents.models import Alert, Integration
from tests.factories import ServiceFactory
from tests.incidents.alerting.payloads import alert, alertmanager

pytestmark = pytest.mark.django_db
URL = re.compile(r"https?://[^\s<\"]+/api/integrations/(alertmanager|grafana)/([A-Za-z0-9_-]{43})/")


def test_create_integration_prints_a_working_url_once(capsys, client, settings):
    settings.PORTAL_BASE_URL = "https://ops.example.com"
    ServiceFactory(name="Cosmetica API", slug="cosmetica-api")
    call_command("create_integration", "prod-am", "--kind", "alertmanager", "--service", "cosmetica-api")
    out, err = capsys.readouterr()
    url = out.strip()
    match = URL.fullmatch(url)
    assert match and url.startswith("https://ops.example.com/api/integrations/alertmanager/")
    assert "shown only once" in err
    integration = Integration.objects.get(name="prod-am")
    assert integration.default_service.slug == "cosmetica-api" and integration.run_first_look

    path = url.removeprefix("https://ops.example.com")
    response = client.post(path, alertmanager(alert(service=None)), content_type="application/json")
    assert response.status_code == 202
    assert Alert.objects.get().incident.services.get().slug == "cosmetica-api"


def test_create_integration_refuses_bad_input(db):
    with pytest.raises(CommandError, match="No service with slug 'nope'"):
        call_command("create_integration", "x", "--kind", "grafana", "--service", "nope")
    call_command("create_integration", "x", "--kind", "grafana", "--base-url", "http://h")
    with pytest.raises(CommandError, match="exists"):
        call_command("create_integration", "x", "--kind", "grafana")
    with pytest.raises(CommandError):
        call_command("create_integration", "y", "--kind", "pagerduty")


@pytest.mark.parametrize(("role", "status"), [("viewer", 403), ("responder", 403), ("admin", 200)])
def test_portal_integrations_page_is_for_admins(client, user_for, role, status):
    client.force_login(user_for(role))
    assert client.get("/ops/integrations/").status_code == status
    assert client.get("/ops/webhooks/").status_code == status
    created = client.post("/ops/integrations/", {"name": "p", "kind": "grafana", "default_severity": "SEV3"})
    assert created.status_code == (201 if role == "admin" else 403)
    assert Integration.objects.filter(name="p").exists() == (role == "admin")


def test_portal_pages_send_anonymous_users_to_login(client, db):
    for url in ["/ops/integrations/", "/ops/webhooks/"]:
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_portal_create_and_rotate_show_the_url_once(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        "/ops/integrations/",
        {
            "name": "grafana-prod",
            "kind": "grafana",
            "default_severity": "SEV2",
            "severity_mapping": '{"critical": "SEV1"}',
            "run_first_look": "on",
        },
    )
    assert response.status_code == 201
    url = URL.search(response.content.decode()).group(0)
    assert url.startswith("http://127.0.0.1:8000/api/integrations/grafana/")  # PORTAL_BASE_URL
    integration = Integration.objects.get(name="grafana-prod")
    assert integration.severity_mapping == {"critical": "SEV1"}
    listing = client.get("/ops/integrations/").content.decode()
    assert "grafana-prod" in listing and not URL.search(listing)  # never shown again

    rotated = client.post(f"/ops/integrations/{integration.pk}/rotate/")
    new_url = URL.search(rotated.content.decode()).group(0)
    assert new_url != url
    assert client.post(url, {}, content_type="application/json").status_code == 404


def test_portal_form_errors(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        "/ops/integrations/",
        {"name": "", "kind": "grafana", "default_severity": "SEV3", "severity_mapping": '{"x": "P0"}'},
    )
    assert response.status_code == 400
    assert b"This field is required" in response.content and b"Unknown severities" in response.content
    assert not Integration.objects.exists()


def test_admin_add_shows_the_url_once(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        "/admin/incidents/integration/add/",
        {"name": "am", "kind": "alertmanager", "default_severity": "SEV3", "severity_mapping": "{}"},
    )
    assert response.status_code == 200
    url = URL.search(response.content.decode()).group(0)
    token = url.rstrip("/").rsplit("/", 1)[1]
    assert Integration.for_token("alertmanager", token) == Integration.objects.get(name="am")
    changelist = client.get("/admin/incidents/integration/").content.decode()
    assert not URL.search(changelist)
