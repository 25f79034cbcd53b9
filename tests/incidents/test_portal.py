"""Portal pages and their htmx partials, as a browser would call them."""

from datetime import timedelta

import pytest
from django.utils import timezone

from incidents.models import Incident, TimelineEvent
from tests.factories import IncidentFactory, ServiceFactory

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def browser(client, responder):
    client.force_login(responder)
    return client


def test_pages_need_login(client, incident):
    for url in ["/incidents/", f"/incidents/{incident.pk}/", "/incidents/new/"]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_login_page_and_redirect(client, responder):
    assert client.get("/accounts/login/").status_code == 200
    response = client.post("/accounts/login/", {"username": "alice", "password": "pw-for-tests"})
    assert response.status_code == 302 and response["Location"] == "/incidents/"
    bad = client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    assert bad.status_code == 200 and b"correct username and password" in bad.content


def test_list_filters_search_and_pagination(browser, responder):
    db = ServiceFactory(name="Postgres", slug="postgres")
    IncidentFactory(title="Replica lag", severity="SEV1", services=[db])
    for n in range(30):
        IncidentFactory(title=f"Noise {n}", severity="SEV4")
    page = browser.get("/incidents/?service=postgres")
    assert b"Replica lag" in page.content and b"Noise" not in page.content
    assert b"Replica lag" in browser.get("/incidents/?search=replica&severity=SEV1").content
    first = browser.get("/incidents/?severity=SEV4").content.decode()
    assert "Page 1 of 2" in first and "severity=SEV4&page=2" in first
    assert browser.get("/incidents/?status=bogus").status_code == 200  # invalid filter: no crash
    assert browser.get("/incidents/?page=999").status_code == 200


def test_declare_form(browser):
    api = ServiceFactory(name="API", slug="api")
    response = browser.post("/incidents/new/", {"title": "Checkout down", "severity": "SEV1", "services": [api.pk]})
    incident = Incident.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/incidents/{incident.pk}/"
    assert incident.severity == "SEV1" and [s.slug for s in incident.services.all()] == ["api"]
    page = browser.get(response["Location"])
    assert b"Checkout down" in page.content and b"Incident declared" in page.content


def test_declare_form_errors_keep_the_input(browser):
    response = browser.post("/incidents/new/", {"title": "", "severity": "SEV9", "summary": "keep me"})
    assert response.status_code == 400
    assert b"This field is required" in response.content and b"keep me" in response.content
    assert Incident.objects.count() == 0


def test_viewer_sees_but_cannot_change(client, viewer, incident):
    client.force_login(viewer)
    page = client.get(f"/incidents/{incident.pk}/")
    assert page.status_code == 200 and b"Add entry" not in page.content and b"Declare incident" not in page.content
    assert client.get("/incidents/new/").status_code == 403
    assert client.post(f"/incidents/{incident.pk}/transition/", {"to": "acknowledged"}, **HX).status_code == 403
    assert (
        client.post(f"/incidents/{incident.pk}/timeline/add/", {"body": "x", "kind": "note"}, **HX).status_code == 403
    )
    incident.refresh_from_db()
    assert incident.status == "triggered" and incident.events.exclude(body__startswith="Nobody to page").count() == 1


def test_add_entry_returns_the_timeline_with_it(browser, incident):
    backdated = (timezone.localtime() - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    response = browser.post(
        f"/incidents/{incident.pk}/timeline/add/",
        {"body": "Found the **bad deploy**", "kind": "action", "occurred_at": backdated},
        **HX,
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="timeline"' in html and "<strong>bad deploy</strong>" in html
    bodies = [e.body for e in incident.events.exclude(body__startswith="Nobody to page")]
    assert bodies[0] == "Found the **bad deploy**"  # backdated before the declaration


def test_add_entry_with_errors_keeps_the_text(browser, incident):
    response = browser.post(f"/incidents/{incident.pk}/timeline/add/", {"body": "x" * 20_001, "kind": "note"}, **HX)
    assert response.status_code == 400
    assert b"at most 20000 characters" in response.content
    assert incident.events.exclude(body__startswith="Nobody to page").count() == 1


def test_edit_in_place_and_conflict(browser, client, incident, responder, responder2):
    note = TimelineEvent.add_note(incident, by=responder, body="original")
    url = f"/incidents/{incident.pk}/timeline/{note.pk}/edit/"
    form = browser.get(url, **HX)
    assert form.status_code == 200 and b'name="version" value="1"' in form.content

    note.edit(by=responder2, version=1, body="Bob got there first")
    stale = browser.post(
        url, {"version": 1, "body": "my text", "kind": "note", "occurred_at": "2026-01-01T10:00"}, **HX
    )
    assert stale.status_code == 409
    html = stale.content.decode()
    assert "Someone else edited this" in html and "Bob got there first" in html and "my text" in html
    assert 'name="version" value="2"' in html
    note.refresh_from_db()
    assert note.body == "Bob got there first"

    saved = browser.post(
        url, {"version": 2, "body": "merged text", "kind": "note", "occurred_at": "2026-01-01T10:00"}, **HX
    )
    assert saved.status_code == 200 and b"merged text" in saved.content
    assert list(note.revisions.values_list("body", flat=True)) == ["Bob got there first", "original"]
    history = browser.get(f"/incidents/{incident.pk}/timeline/{note.pk}/revisions/", **HX)
    assert b"original" in history.content


def test_delete_undo_and_pin(browser, incident, responder):
    note = TimelineEvent.add_note(incident, by=responder, body="oops")
    base = f"/incidents/{incident.pk}/timeline/{note.pk}"
    deleted = browser.post(f"{base}/delete/", **HX)
    assert deleted.status_code == 200 and b"Entry deleted" in deleted.content and b"Undo" in deleted.content
    restored = browser.post(f"{base}/restore/", **HX)
    assert restored.status_code == 200 and b"oops" in restored.content
    pinned = browser.post(f"{base}/pin/", **HX)
    assert b"Unpin" in pinned.content
    note.refresh_from_db()
    assert note.pinned and note.deleted_at is None


def test_system_entry_offers_annotation_only(browser, incident):
    system = incident.events.exclude(body__startswith="Nobody to page").get()
    page = browser.get(f"/incidents/{incident.pk}/timeline/{system.pk}/edit/", **HX)
    assert b'name="annotation"' in page.content and b'name="body"' not in page.content
    assert browser.post(f"/incidents/{incident.pk}/timeline/{system.pk}/delete/", **HX).status_code == 400
    saved = browser.post(
        f"/incidents/{incident.pk}/timeline/{system.pk}/edit/",
        {"annotation_version": 1, "annotation": "paged at 3am"},
        **HX,
    )
    assert saved.status_code == 200 and b"paged at 3am" in saved.content


def test_filter_timeline_by_kind(browser, incident, responder):
    TimelineEvent.add_note(incident, by=responder, body="an action", kind="action")
    TimelineEvent.add_note(incident, by=responder, body="a comms update", kind="communication")
    html = browser.get(f"/incidents/{incident.pk}/timeline/?kind=communication", **HX).content
    assert b"a comms update" in html and b"an action" not in html and b"Incident declared" not in html


def test_long_timelines_show_the_newest_window_and_load_older_ones_on_demand(browser, incident, responder):
    for n in range(205):
        TimelineEvent.objects.create(incident=incident, body=f"entry {n:03}", author=responder)
    page = browser.get(f"/incidents/{incident.pk}/").content.decode()
    assert "Show earlier entries" in page and "entry 204" in page and "entry 104" not in page
    oldest_shown = TimelineEvent.objects.get(body="entry 105")
    assert f"?before={oldest_shown.pk}" in page

    older = browser.get(f"/incidents/{incident.pk}/timeline/earlier/?before={oldest_shown.pk}", **HX).content.decode()
    assert "entry 104" in older and "entry 005" in older and "entry 004" not in older and "entry 105" not in older
    assert "Show earlier entries" in older
    oldest = browser.get(
        f"/incidents/{incident.pk}/timeline/earlier/?before={TimelineEvent.objects.get(body='entry 005').pk}", **HX
    ).content.decode()
    assert "entry 000" in oldest and "Incident declared" in oldest and "Show earlier entries" not in oldest


@pytest.mark.parametrize("before", ["", "abc", "999999"])
def test_earlier_entries_with_a_bad_cursor_is_a_400(browser, incident, before):
    response = browser.get(f"/incidents/{incident.pk}/timeline/earlier/?before={before}", **HX)
    assert response.status_code == 400


def test_transition_buttons_and_errors(browser, incident):
    ok = browser.post(f"/incidents/{incident.pk}/transition/", {"to": "acknowledged", "note": "mine"}, **HX)
    assert ok.status_code == 200
    html = ok.content.decode()
    assert 'data-testid="status">Acknowledged' in html and 'hx-swap-oob="outerHTML"' in html and "mine" in html
    again = browser.post(f"/incidents/{incident.pk}/transition/", {"to": "acknowledged"}, **HX)
    assert again.status_code == 409 and b"already acknowledged" in again.content
    bad = browser.post(f"/incidents/{incident.pk}/transition/", {"to": "exploded"}, **HX)
    assert bad.status_code == 400 and b"Unknown status" in bad.content


def test_update_details_form(browser, incident, responder2):
    ServiceFactory(name="API", slug="api")
    response = browser.post(
        f"/incidents/{incident.pk}/details/",
        {"severity": "SEV1", "commander": responder2.pk, "services": [], "started_at": "2026-11-01T09:30"},
        **HX,
    )
    assert response.status_code == 200
    incident.refresh_from_db()
    assert incident.severity == "SEV1" and incident.commander == responder2
    bad = browser.post(f"/incidents/{incident.pk}/details/", {"severity": "SEV1", "started_at": "never"}, **HX)
    assert bad.status_code == 400 and b"Enter a valid date/time" in bad.content


def test_missing_objects_are_404(browser, incident):
    assert browser.get("/incidents/999999/").status_code == 404
    assert browser.post("/incidents/999999/timeline/add/", {"body": "x"}, **HX).status_code == 404
    assert browser.get(f"/incidents/{incident.pk}/timeline/999999/edit/", **HX).status_code == 404


def test_times_follow_the_tz_cookie(browser, incident):
    browser.cookies["tz"] = "Asia%2FTokyo"
    assert b"JST" in browser.get(f"/incidents/{incident.pk}/").content
    browser.cookies["tz"] = "Not/AZone"
    assert b"UTC" in browser.get(f"/incidents/{incident.pk}/").content
