"""The live incident page: the "changed since" poll, its cost, and refreshes that keep what the
reader is typing."""

import json

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from incidents.models import Alert, AlertGroup, Integration, TimelineEvent

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def reader(client, viewer):
    """A second person with the incident open (a viewer may watch)."""
    client.force_login(viewer)
    return client


def token_of(client, incident) -> str:
    page = client.get(f"/incidents/{incident.pk}/").content.decode()
    start = page.index("?since=") + len("?since=")
    return page[start : page.index('"', start)]


def poll(client, incident, token):
    return client.get(f"/incidents/{incident.pk}/live/", {"since": token}, **HX)


def changed_parts(response) -> set[str]:
    return {name.removeprefix("live:") for name in json.loads(response["HX-Trigger"])}


def test_an_idle_page_gets_204_at_a_constant_cost(reader, incident, responder):
    token = token_of(reader, incident)
    with CaptureQueriesContext(connection) as small:
        assert poll(reader, incident, token).status_code == 204
    # A busy incident costs the same: one fingerprint query whatever its size.
    for n in range(30):
        TimelineEvent.add_note(incident, by=responder, body=f"note {n}")
    incident.transition_to("acknowledged", by=responder)
    token = token_of(reader, incident)
    with CaptureQueriesContext(connection) as big:
        assert poll(reader, incident, token).status_code == 204
    assert len(small) == len(big) == 3  # session, user, fingerprints
    assert sum("live_timeline_events" in q["sql"] for q in big.captured_queries) == 1


def test_a_colleagues_note_refreshes_the_timeline_only(reader, incident, responder):
    token = token_of(reader, incident)
    TimelineEvent.add_note(incident, by=responder, body="Replica is 40 s behind")
    response = poll(reader, incident, token)
    assert response.status_code == 200 and changed_parts(response) == {"timeline"}
    # The answer is the new poller, carrying the new token: the next poll is quiet again.
    new_token = response.content.decode().split("?since=")[1].split('"')[0]
    assert new_token != token and poll(reader, incident, new_token).status_code == 204
    entries = reader.get(f"/incidents/{incident.pk}/timeline/entries/", **HX).content.decode()
    assert "Replica is 40 s behind" in entries and 'name="body"' not in entries  # not the add form


def test_a_status_change_refreshes_the_header_and_the_timeline(reader, incident, responder):
    token = token_of(reader, incident)
    incident.transition_to("acknowledged", by=responder)
    assert changed_parts(poll(reader, incident, token)) == {"header", "timeline"}
    header = reader.get(f"/incidents/{incident.pk}/header/", **HX).content.decode()
    assert 'data-testid="status">Acknowledged' in header


def test_pinning_and_annotating_refresh_the_timeline(reader, incident, responder):
    note = TimelineEvent.add_note(incident, by=responder, body="Deploy 812 rolled back")
    token = token_of(reader, incident)
    note.set_pinned(by=responder, pinned=True)
    assert changed_parts(poll(reader, incident, token)) == {"timeline"}
    token = token_of(reader, incident)
    note.annotate(by=responder, annotation_version=1, annotation="by hand")
    assert changed_parts(poll(reader, incident, token)) == {"timeline"}


def test_roles_and_publishing_refresh_the_header(reader, incident, responder, responder2):
    token = token_of(reader, incident)
    incident.update_details(by=responder, commander=responder2)
    assert "header" in changed_parts(poll(reader, incident, token))
    token = token_of(reader, incident)
    incident.set_public(by=responder, public=True)
    assert "header" in changed_parts(poll(reader, incident, token))


def test_a_new_alert_refreshes_the_alerts(reader, incident):
    token = token_of(reader, incident)
    integration, _ = Integration.create(name="prod-alertmanager", kind="alertmanager")
    group = AlertGroup.objects.create(integration=integration, group_key="{}", key_hash="k", incident=incident)
    Alert.objects.create(
        integration=integration,
        group=group,
        incident=incident,
        fingerprint="f1",
        alertname="APIHigh5xxRate",
        status="firing",
        starts_at=timezone.now(),
    )
    assert changed_parts(poll(reader, incident, token)) == {"alerts"}
    alerts = reader.get(f"/incidents/{incident.pk}/alerts/", **HX).content.decode()
    assert "APIHigh5xxRate" in alerts and "hidden" not in alerts.split(">")[0]


def test_a_bad_token_refreshes_everything_never_a_500(reader, incident):
    response = poll(reader, incident, "garbage")
    assert response.status_code == 200
    assert {"header", "timeline", "alerts", "runs"} <= changed_parts(response)
    nul = poll(reader, incident, "garbage\x00")  # refused by the central NUL guard, naming the field
    assert nul.status_code == 400 and nul.json()["field"] == "since"
    assert reader.get("/incidents/999999/live/", {"since": ""}, **HX).status_code == 404


def test_signed_out_the_poll_sends_the_page_to_the_login(client, incident):
    response = poll(client, incident, "")
    assert response.status_code == 204
    assert response["HX-Redirect"] == f"/accounts/login/?next=/incidents/{incident.pk}/"


def test_polling_does_not_keep_an_idle_session_alive(reader, incident):
    token = token_of(reader, incident)
    session = reader.session
    session["_touched"] = 0  # last activity long ago: any real request now moves the expiry
    session.save()
    stored = Session.objects.get(session_key=session.session_key)
    poll(reader, incident, token)
    assert Session.objects.get(session_key=session.session_key).expire_date == stored.expire_date
    reader.get(f"/incidents/{incident.pk}/")
    assert Session.objects.get(session_key=session.session_key).expire_date > stored.expire_date


def test_a_refresh_keeps_what_the_reader_is_using(reader, incident, responder):
    note = TimelineEvent.add_note(incident, by=responder, body="Editing this one")
    entries = reader.get(
        f"/incidents/{incident.pk}/timeline/entries/", {"keep": [f"event-{note.pk}"]}, **HX
    ).content.decode()
    assert f'<article id="event-{note.pk}" hx-preserve' in entries
    assert "hx-preserve" not in reader.get(f"/incidents/{incident.pk}/timeline/entries/", **HX).content.decode()


def test_the_header_keeps_the_typed_note_and_open_forms(client, responder, incident):
    client.force_login(responder)
    header = client.get(
        f"/incidents/{incident.pk}/header/", {"keep": ["transition-note", "edit-details"]}, **HX
    ).content.decode()
    assert 'id="transition-note" data-keep hx-preserve' in header
    assert 'id="edit-details" data-keep hx-preserve' in header
    assert 'id="close-with-reason" data-keep hx-preserve' not in header
    # An action of the reader's own gets a fresh header: the note it sent is not kept.
    own = client.post(f"/incidents/{incident.pk}/transition/", {"to": "acknowledged", "note": "on it"}, **HX)
    assert "hx-preserve" not in own.content.decode()
