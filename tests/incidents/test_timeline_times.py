"""Timeline times and guards: an entry without a chosen time is stamped at save, to the second;
a chosen time keeps its seconds; pinning and annotating never refuse a colleague's text edit;
every form on the incident page has its own element ids."""

import re
from collections import Counter
from datetime import datetime, timedelta

import pytest
import time_machine
from django.utils import timezone

from incidents.models import TimelineEvent

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}
SAVED_AT = datetime(2026, 3, 9, 14, 7, 41, tzinfo=timezone.get_fixed_timezone(0))


@pytest.fixture
def browser(client, responder):
    client.force_login(responder)
    return client


def test_an_entry_without_a_time_gets_the_servers_time_at_save_with_seconds(browser, incident):
    with time_machine.travel(SAVED_AT - timedelta(minutes=2), tick=False):
        page = browser.get(f"/incidents/{incident.pk}/").content.decode()
    # The form no longer carries the minute the page loaded.
    box = re.search(r'<input[^>]*name="occurred_at"[^>]*>', page).group(0)
    assert "value=" not in box and 'step="1"' in box
    with time_machine.travel(SAVED_AT, tick=False):
        response = browser.post(
            f"/incidents/{incident.pk}/timeline/add/",
            {"body": "Failover done", "kind": "action", "occurred_at": ""},
            **HX,
        )
    assert response.status_code == 200
    entry = incident.events.get(body="Failover done")
    assert entry.occurred_at == SAVED_AT
    assert "14:07:41" in response.content.decode()


def test_a_note_added_after_a_system_event_sorts_after_it(browser, incident, responder):
    incident.transition_to("acknowledged", by=responder)
    browser.post(f"/incidents/{incident.pk}/timeline/add/", {"body": "Looking", "kind": "note"}, **HX)
    assert list(incident.events.values_list("body", flat=True))[-1] == "Looking"


def test_a_chosen_time_keeps_its_seconds(browser, incident):
    response = browser.post(
        f"/incidents/{incident.pk}/timeline/add/",
        {"body": "Deploy 4711 finished", "kind": "action", "occurred_at": "2026-03-09T13:58:27"},
        **HX,
    )
    assert response.status_code == 200
    entry = incident.events.get(body="Deploy 4711 finished")
    assert timezone.localtime(entry.occurred_at).strftime("%H:%M:%S") == "13:58:27"
    form = browser.get(f"/incidents/{incident.pk}/timeline/{entry.pk}/edit/", **HX).content.decode()
    assert 'value="2026-03-09T13:58:27"' in form


def test_a_bad_time_is_a_400_naming_the_field(browser, incident):
    entries = incident.events.count()
    response = browser.post(
        f"/incidents/{incident.pk}/timeline/add/", {"body": "x", "kind": "note", "occurred_at": "yesterday-ish"}, **HX
    )
    assert response.status_code == 400 and b"Enter a valid date/time" in response.content
    assert 'id="entry-occurred_at"' in response.content.decode()
    assert incident.events.count() == entries  # nothing written


def test_pinning_does_not_refuse_a_colleagues_text_edit(browser, incident, responder, responder2):
    note = TimelineEvent.add_note(incident, by=responder2, body="Replica lag 40 s")
    seen = browser.get(f"/incidents/{incident.pk}/timeline/{note.pk}/edit/", **HX).content.decode()
    assert 'name="version" value="1"' in seen
    # Meanwhile someone pins it, twice.
    assert browser.post(f"/incidents/{incident.pk}/timeline/{note.pk}/pin/", **HX).status_code == 200
    note.set_pinned(by=responder, pinned=False)
    note.set_pinned(by=responder, pinned=True)
    saved = browser.post(
        f"/incidents/{incident.pk}/timeline/{note.pk}/edit/",
        {"version": 1, "body": "Replica lag 40 s, rising", "kind": "note", "occurred_at": "2026-03-09T13:00:00"},
        **HX,
    )
    assert saved.status_code == 200 and b"Someone else edited" not in saved.content
    note.refresh_from_db()
    assert note.body == "Replica lag 40 s, rising" and note.pinned and note.version == 2
    assert list(note.revisions.values_list("action", flat=True)) == ["edit"]


def test_pinning_through_the_api_keeps_the_version(api, incident, responder):
    note = TimelineEvent.add_note(incident, by=responder, body="Cache hit rate 20%")
    response = api.patch(f"/api/incidents/{incident.pk}/timeline/{note.pk}/", {"pinned": True}, format="json")
    assert response.status_code == 200 and response.json()["pinned"] is True and response.json()["version"] == 1
    edit = api.patch(
        f"/api/incidents/{incident.pk}/timeline/{note.pk}/",
        {"version": 1, "body": "Cache hit rate 20 %"},
        format="json",
    )
    assert edit.status_code == 200 and edit.json()["version"] == 2


def test_an_annotation_does_not_refuse_a_text_edit_but_guards_other_annotations(api, incident, responder):
    note = TimelineEvent.add_note(incident, by=responder, body="Restarted worker-3")
    base = f"/api/incidents/{incident.pk}/timeline/{note.pk}/"
    assert api.patch(base, {"annotation_version": 1, "annotation": "It was OOM"}, format="json").status_code == 200
    edit = api.patch(base, {"version": 1, "body": "Restarted worker-3 and worker-4"}, format="json")
    assert edit.status_code == 200
    stale = api.patch(base, {"annotation_version": 1, "annotation": "Not OOM"}, format="json")
    assert stale.status_code == 409 and stale.json()["current_annotation"] == "It was OOM"
    missing = api.patch(base, {"annotation": "no guard"}, format="json")
    assert missing.status_code == 400 and "annotation_version" in missing.json()
    note.refresh_from_db()
    assert (note.body, note.annotation) == ("Restarted worker-3 and worker-4", "It was OOM")
    assert (note.version, note.annotation_version) == (2, 2)


def test_element_ids_are_unique_with_an_edit_form_open(browser, incident, responder):
    note = TimelineEvent.add_note(incident, by=responder, body="first")
    page = browser.get(f"/incidents/{incident.pk}/").content.decode()
    editor = browser.get(f"/incidents/{incident.pk}/timeline/{note.pk}/edit/", **HX).content.decode()
    # The editor is swapped in place of its entry: its ids join the page's.
    ids = re.findall(r'\sid="([^"]+)"', page) + re.findall(r'\sid="([^"]+)"', editor)
    ids.remove(f"event-{note.pk}")  # the article replaced by the editor
    duplicates = [i for i, n in Counter(ids).items() if n > 1]
    assert duplicates == []
    assert f'for="event-{note.pk}-body"' in editor and 'for="entry-body"' in page
