from datetime import timedelta

import pytest
from django.utils import timezone

from incidents.models import TimelineEvent

pytestmark = pytest.mark.django_db

EVENT_FIELDS = {
    "id", "incident", "occurred_at", "kind", "author", "body", "body_html", "pinned", "source", "version",
    "created_at", "edited_at",
}  # fmt: skip


def url(incident, event=None, suffix=""):
    base = f"/api/incidents/{incident.pk}/timeline/"
    return base + (f"{event}/" if event else "") + suffix


@pytest.fixture
def note(api, incident):
    response = api.post(url(incident), {"body": "Checked **pg_stat_activity**"}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_add_a_note_defaults_to_now_and_renders_markdown(note, incident):
    assert set(note) >= EVENT_FIELDS
    assert note["author"] == "alice" and note["source"] == "manual" and note["version"] == 1
    assert note["body_html"] == "<p>Checked <strong>pg_stat_activity</strong></p>"
    occurred = TimelineEvent.objects.get(pk=note["id"]).occurred_at
    assert abs(timezone.now() - occurred) < timedelta(seconds=10)


def test_a_note_can_be_backdated_and_lists_in_time_order(api, incident):
    earlier = (timezone.now() - timedelta(hours=3)).isoformat()
    api.post(url(incident), {"body": "late note"}, format="json")
    api.post(url(incident), {"body": "backdated", "occurred_at": earlier, "kind": "action"}, format="json")
    bodies = [e["body"] for e in api.get(url(incident)).json()["results"]]
    assert bodies.index("backdated") < bodies.index("late note")


def test_list_filters_by_kind(api, incident, note):
    kinds = {e["kind"] for e in api.get(url(incident) + "?kind=note").json()["results"]}
    assert kinds == {"note"}
    assert api.get(url(incident) + "?kind=bogus").status_code == 400


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "body"),
        ({"body": ""}, "body"),
        ({"body": "x" * 20_001}, "body"),
        ({"body": "x", "kind": "gossip"}, "kind"),
        ({"body": "x", "kind": "status_change"}, "kind"),
        ({"body": "x", "occurred_at": "soon"}, "occurred_at"),
        ({"body": "x", "pinned": "maybe"}, "pinned"),
    ],
)
def test_add_rejects_bad_input(api, incident, payload, field):
    before = TimelineEvent.objects.count()
    response = api.post(url(incident), payload, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert TimelineEvent.objects.count() == before


def test_edit_with_the_current_version_keeps_a_revision(api, incident, note):
    response = api.patch(
        url(incident, note["id"]), {"version": 1, "body": "Checked pg_stat_activity: 97 active"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["version"] == 2 and response.json()["edited_at"]
    revisions = api.get(url(incident, note["id"], "revisions/")).json()
    assert [(r["version"], r["action"], r["body"]) for r in revisions] == [(1, "edit", "Checked **pg_stat_activity**")]


def test_stale_version_is_a_409_with_the_current_text(api_for, incident, note):
    alice, bob = api_for("responder"), api_for("admin")
    assert bob.patch(url(incident, note["id"]), {"version": 1, "body": "Bob's text"}, format="json").status_code == 200
    response = alice.patch(url(incident, note["id"]), {"version": 1, "body": "Alice's text"}, format="json")
    assert response.status_code == 409
    body = response.json()
    assert "Someone else edited" in body["detail"]
    assert body["current_body"] == "Bob's text" and body["current_version"] == 2
    assert TimelineEvent.objects.get(pk=note["id"]).body == "Bob's text"


def test_content_edit_without_version_is_refused(api, incident, note):
    response = api.patch(url(incident, note["id"]), {"body": "no version"}, format="json")
    assert response.status_code == 400
    assert "version is required" in response.json()["detail"]


@pytest.mark.parametrize(
    "payload",
    [
        {"version": 1},
        {"version": 1, "body": "x" * 20_001},
        {"version": "one", "body": "x"},
        {"version": 1, "author": "bob"},
    ],
)
def test_edit_rejects_bad_input_and_keeps_the_text(api, incident, note, payload):
    response = api.patch(url(incident, note["id"]), payload, format="json")
    assert response.status_code == 400
    assert TimelineEvent.objects.get(pk=note["id"]).body == "Checked **pg_stat_activity**"


def test_pin_without_version(api, incident, note):
    response = api.patch(url(incident, note["id"]), {"pinned": True}, format="json")
    assert response.status_code == 200 and response.json()["pinned"] is True


def test_soft_delete_and_restore(api, incident, note):
    assert api.delete(url(incident, note["id"])).status_code == 204
    listed = [e["id"] for e in api.get(url(incident)).json()["results"]]
    assert note["id"] not in listed
    with_deleted = api.get(url(incident) + "?include_deleted=true").json()["results"]
    assert [e["deleted"] for e in with_deleted if e["id"] == note["id"]] == [True]
    assert api.delete(url(incident, note["id"])).status_code == 400
    assert api.patch(url(incident, note["id"]), {"version": 2, "body": "x"}, format="json").status_code == 400

    restored = api.post(url(incident, note["id"], "restore/"))
    assert restored.status_code == 200 and restored.json()["deleted"] is False
    assert restored.json()["body"] == "Checked **pg_stat_activity**"
    actions = [r["action"] for r in api.get(url(incident, note["id"], "revisions/")).json()]
    assert actions == ["restore", "delete"]
    assert api.post(url(incident, note["id"], "restore/")).status_code == 400


def test_system_events_cannot_be_edited_or_deleted_but_can_be_annotated(api, incident):
    system = incident.events.get(source="system", kind="status_change")
    response = api.patch(url(incident, system.pk), {"version": 1, "body": "rewritten"}, format="json")
    assert response.status_code == 400
    assert "annotation" in response.json()["detail"]
    assert api.delete(url(incident, system.pk)).status_code == 400

    response = api.patch(
        url(incident, system.pk), {"annotation_version": 1, "annotation": "Paged by *Grafana*"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["annotation_html"] == "<p>Paged by <em>Grafana</em></p>"
    system.refresh_from_db()
    # An annotation has its own guard: the entry's version is untouched.
    assert system.body.startswith("Incident declared") and system.version == 1 and system.annotation_version == 2


def test_events_of_another_incident_are_404(api, incident, note):
    from tests.factories import IncidentFactory

    other = IncidentFactory()
    assert api.get(url(other, note["id"])).status_code == 404
    assert api.patch(url(other, note["id"]), {"version": 1, "body": "x"}, format="json").status_code == 404
    assert api.get("/api/incidents/999999/timeline/").status_code == 404
