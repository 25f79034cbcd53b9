"""Alert sources: a new source is one module and one registration line."""

import pytest
from rest_framework import serializers

from incidents.alerting import sources
from incidents.alerting.sources.base import Batch, NormalisedAlert, Source, validated
from incidents.models import Alert, Incident, Integration
from tests.incidents.alerting.payloads import alert, grafana

pytestmark = pytest.mark.django_db


# --- the throwaway source: what "one new module" holds --------------------------------------
class _Check(serializers.Serializer):
    id = serializers.CharField(max_length=128)
    state = serializers.ChoiceField(choices=["alerting", "ok"])
    name = serializers.CharField(max_length=200)
    since = serializers.DateTimeField()
    monitor_url = serializers.URLField(required=False)


class _Notification(serializers.Serializer):
    monitor = serializers.CharField(max_length=200)
    checks = serializers.ListField(child=_Check(), allow_empty=False)


def _normalise(raw: dict) -> Batch:
    data = validated(_Notification(data=raw))
    return Batch(
        group_key=f"uptime/{data['monitor']}",
        alerts=[
            NormalisedAlert(
                fingerprint=check["id"],
                status="firing" if check["state"] == "alerting" else "resolved",
                starts_at=check["since"],
                ends_at=None,
                labels={"alertname": check["name"], "severity": "critical", "service": "cosmetica-api"},
                annotations={"summary": f"{check['name']} is down"},
                source_fields={"links": {"monitor": check["monitor_url"]}} if check.get("monitor_url") else {},
            )
            for check in data["checks"]
        ],
    )


UPTIME = Source(slug="uptime", label="Uptime checks", normalise=_normalise)


@pytest.fixture
def uptime_source():
    sources.register(UPTIME)  # the one registration line
    yield UPTIME
    sources.unregister(UPTIME.slug)


def notification(state: str = "alerting") -> dict:
    return {
        "monitor": "checkout",
        "checks": [
            {
                "id": "chk-1",
                "state": state,
                "name": "CheckoutDown",
                "since": "2025-12-16T10:00:00Z",
                "monitor_url": "https://uptime.example/monitors/checkout",
            }
        ],
    }


def test_a_third_source_takes_one_module_and_one_registration(client, uptime_source, service):
    assert ("uptime", "Uptime checks") in Integration._meta.get_field("kind").choices
    _, token = Integration.create(name="uptime", kind="uptime")  # full_clean accepts the registered kind

    response = client.post(f"/api/integrations/uptime/{token}/", notification(), content_type="application/json")
    assert response.status_code == 202, response.json()
    incident = Incident.objects.get()
    assert (incident.title, incident.severity) == ("CheckoutDown is down", "SEV1")
    assert [s.slug for s in incident.services.all()] == ["cosmetica-api"]
    row = Alert.objects.get()
    assert row.source_fields == {"links": {"monitor": "https://uptime.example/monitors/checkout"}}
    event = incident.events.get(kind="alert").body
    assert event.startswith("**Firing**: `CheckoutDown`")
    assert "[Monitor](https://uptime.example/monitors/checkout)" in event

    resolved = client.post(f"/api/integrations/uptime/{token}/", notification("ok"), content_type="application/json")
    assert resolved.status_code == 202
    incident.refresh_from_db()
    assert incident.status == "mitigated"  # the intake's rules, not the source, decide this


def test_a_third_sources_bad_payload_is_a_400_naming_the_field(client, uptime_source):
    _, token = Integration.create(name="uptime", kind="uptime")
    payload = notification()
    del payload["checks"][0]["since"]
    response = client.post(f"/api/integrations/uptime/{token}/", payload, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"] == "checks[0].since: This field is required."


def test_an_unregistered_kind_is_refused(client, db):
    response = client.post("/api/integrations/uptime/whatever/", notification(), content_type="application/json")
    assert response.status_code == 404
    assert "uptime" in response.json()["detail"]
    with pytest.raises(Exception, match="kind"):
        Integration.create(name="uptime", kind="uptime")


def test_the_portal_form_offers_every_registered_source(client, admin_user, uptime_source):
    client.force_login(admin_user)
    page = client.get("/ops/integrations/").content.decode()
    for slug in ("alertmanager", "grafana", "uptime"):
        assert f'value="{slug}"' in page


def test_registering_a_slug_twice_is_refused():
    with pytest.raises(ValueError, match="grafana"):
        sources.register(Source(slug="grafana", label="Another Grafana", normalise=_normalise))
    assert sources.get("grafana").label == "Grafana alerting"


def test_grafana_links_and_values_are_its_source_fields_and_alertmanager_has_none(client):
    _, token = Integration.create(name="grafana", kind="grafana")
    payload = grafana(alert("StockConsumeFailures"))
    payload["alerts"][0]["panelURL"] = "javascript:alert(1)"  # dropped, never refused
    assert (
        client.post(f"/api/integrations/grafana/{token}/", payload, content_type="application/json").status_code == 202
    )
    row = Alert.objects.get()
    assert row.source_fields == {
        "links": {
            "dashboard": "https://grafana.example/d/sales-stock",
            "silence": "https://grafana.example/alerting/silence/new?alertmanager=grafana",
        },
        "values": {"B": 0.07, "C": 1},
    }
    assert list(row.links) == ["source", "dashboard", "runbook", "silence"]

    as_alertmanager = {**grafana(alert()), "version": "4"}  # Grafana's extra fields are not Alertmanager's
    assert sources.get("alertmanager").normalise(as_alertmanager).alerts[0].source_fields == {}
