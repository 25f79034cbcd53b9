import zoneinfo
from datetime import date, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from incidents.models import PostIncidentReview
from incidents.review_export import export_markdown
from incidents.tasks import mark_overdue_reviews
from opsportal.errors import Conflict, DomainError
from tests.factories import IncidentFactory, UserFactory

pytestmark = pytest.mark.django_db
UTC = zoneinfo.ZoneInfo("UTC")
PARIS = zoneinfo.ZoneInfo("Europe/Paris")


@pytest.fixture
def resolved(responder):
    incident = IncidentFactory(title="Checkout 502", commander=responder, created_by=responder)
    incident.transition_to("resolved", by=responder)
    return incident


@pytest.fixture
def review(resolved):
    return resolved.review


def tomorrow() -> date:
    return timezone.localdate() + timedelta(days=1)


def test_resolving_opens_one_review_owned_by_the_commander(resolved, responder):
    review = resolved.review
    assert review.state == "draft" and review.owner == responder
    assert review.due_at == resolved.resolved_at + timedelta(hours=48)
    assert resolved.events.filter(body__startswith="Post-incident review opened").count() == 1

    resolved.transition_to("investigating", by=responder, note="came back")
    resolved.transition_to("resolved", by=responder)
    assert PostIncidentReview.objects.filter(incident=resolved).count() == 1
    assert PostIncidentReview.objects.get(incident=resolved).pk == review.pk
    assert resolved.events.filter(body__startswith="Post-incident review opened").count() == 1


def test_unresolved_incidents_have_no_review(api, incident):
    incident.transition_to("mitigated", by=None)
    assert not PostIncidentReview.objects.exists()
    response = api.get(f"/api/incidents/{incident.pk}/review/")
    assert response.status_code == 404 and "no review yet" in response.json()["detail"]


def test_due_time_is_48_elapsed_hours_across_the_dst_change(settings, responder):
    settings.TIME_ZONE = "Europe/Paris"
    incident = IncidentFactory(title="Night outage")
    # Saturday 28 March 2026, 10:00 in Paris (CET, UTC+1); clocks go forward that night.
    with time_machine.travel(datetime(2026, 3, 28, 10, 0, tzinfo=PARIS), tick=False):
        incident.transition_to("resolved", by=responder)
    review = incident.review
    assert review.due_at == datetime(2026, 3, 30, 9, 0, tzinfo=UTC)
    with timezone.override(PARIS):
        local = timezone.localtime(review.due_at)
        assert (local.hour, local.tzname()) == (11, "CEST")
        assert "Due: 2026-03-30 11:00 CEST" in export_markdown(review)


def test_times_are_computed_from_the_incident_and_its_timeline(responder):
    t0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    incident = IncidentFactory(title="Timed", started_at=t0, detected_at=t0 + timedelta(minutes=5))
    for minutes, status in ((12, "acknowledged"), (40, "mitigated"), (65, "resolved")):
        with time_machine.travel(t0 + timedelta(minutes=minutes), tick=False):
            incident.transition_to(status, by=responder)
    times = incident.review.times()
    assert {k: v["computed"] for k, v in times.items()} == {
        "detect": 300,
        "acknowledge": 420,
        "mitigate": 2100,
        "resolve": 3600,
    }


def test_without_acknowledgement_the_first_human_entry_counts(responder):
    from incidents.models import TimelineEvent

    t0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    incident = IncidentFactory(title="Alert-opened", detected_at=t0, created_by=None)
    TimelineEvent.add_note(incident, by=responder, body="looking", occurred_at=t0 + timedelta(minutes=9))
    with time_machine.travel(t0 + timedelta(minutes=30), tick=False):
        incident.transition_to("resolved", by=responder)
    assert incident.review.times()["acknowledge"]["computed"] == 540
    api_value = PostIncidentReview.objects.for_api().get(pk=incident.review.pk).times()["acknowledge"]["computed"]
    assert api_value == 540


def test_override_needs_a_reason_and_keeps_the_computed_value(review, responder):
    with pytest.raises(DomainError, match="needs a reason"):
        review.update(by=responder, version=1, time_overrides={"detect": {"seconds": 60}})
    review.update(by=responder, version=1, time_overrides={"detect": {"seconds": 60, "reason": "monitoring lag"}})
    detect = review.times()["detect"]
    assert detect["seconds"] == 60 and detect["override"] == 60 and detect["reason"] == "monitoring lag"
    assert detect["computed"] == 0
    review.update(by=responder, version=review.version, time_overrides={"detect": None})
    assert review.times()["detect"]["override"] is None


def test_publish_lists_what_is_missing(api, review, responder):
    response = api.post(f"/api/reviews/{review.pk}/publish/")
    assert response.status_code == 400
    missing = response.json()["missing"]
    assert missing[:3] == ["Summary is empty", "Impact is empty", "Root cause is empty"]
    assert "action item with an owner and a due date" in missing[3]

    review.update(by=responder, version=1, summary="502s", impact="checkout down 20 min", root_cause="bad config")
    review.add_action_item(by=responder, title="Lint nginx config in CI", kind="test")  # no owner, no due date
    assert len(api.post(f"/api/reviews/{review.pk}/publish/").json()["missing"]) == 1
    review.add_action_item(by=responder, title="Alert on 502", kind="alert", owner=responder, due_date=tomorrow())
    response = api.post(f"/api/reviews/{review.pk}/publish/")
    assert response.status_code == 200 and response.json()["state"] == "published"
    assert review.incident.events.filter(body="Post-incident review published.").exists()


def test_no_action_needed_needs_a_justification(review, responder):
    review.update(by=responder, version=1, summary="s", impact="i", root_cause="r", no_action_needed=True)
    assert review.missing_for_publish() == ["“No action needed” needs a justification"]
    review.update(by=responder, version=review.version, no_action_reason="one-off provider outage")
    review.publish(by=responder)
    assert review.state == "published" and review.published_at


def test_published_review_is_reopened_with_a_reason(api, review, responder):
    review.update(by=responder, version=1, summary="s", impact="i", root_cause="r", no_action_needed=True,
                  no_action_reason="none")  # fmt: skip
    review.publish(by=responder)
    response = api.patch(f"/api/reviews/{review.pk}/", {"version": review.version, "summary": "x"}, format="json")
    assert response.status_code == 400 and "reopen" in response.json()["detail"]
    assert api.post(f"/api/reviews/{review.pk}/reopen/", {"reason": " "}, format="json").status_code == 400
    response = api.post(f"/api/reviews/{review.pk}/reopen/", {"reason": "RCA was wrong"}, format="json")
    assert response.status_code == 200 and response.json()["state"] == "draft"
    assert list(review.reopenings.values_list("reason", flat=True)) == ["RCA was wrong"]


def test_editing_the_review_of_a_reopened_incident_is_refused(api, review, responder):
    review.incident.transition_to("investigating", by=responder)
    response = api.patch(f"/api/reviews/{review.pk}/", {"version": 1, "summary": "x"}, format="json")
    assert response.status_code == 400 and "once it is resolved" in response.json()["detail"]
    review.refresh_from_db()
    assert review.summary == ""


def test_overdue_job_notifies_the_owner_once(review, responder):
    responder.email = "alice@example.com"
    responder.save()
    with time_machine.travel(review.due_at - timedelta(minutes=1), tick=False):
        assert mark_overdue_reviews() == 0
    with time_machine.travel(review.due_at + timedelta(minutes=5), tick=False):
        assert mark_overdue_reviews() == 1
        assert mark_overdue_reviews() == 0
        review.refresh_from_db()
        assert review.overdue
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["alice@example.com"] and "overdue" in mail.outbox[0].subject
    assert review.incident.events.filter(body__startswith="Post-incident review is overdue").count() == 1
    with time_machine.travel(review.due_at + timedelta(hours=5), tick=False):
        assert mark_overdue_reviews() == 0
    assert len(mail.outbox) == 1


def test_concurrent_edits_of_one_field_conflict_other_fields_merge(api_for, review):
    alice, root = api_for("responder"), api_for("admin")
    url = f"/api/reviews/{review.pk}/"
    assert root.patch(url, {"version": 1, "summary": "Root's summary"}, format="json").status_code == 200
    response = alice.patch(url, {"version": 1, "summary": "Alice's summary"}, format="json")
    assert response.status_code == 409
    body = response.json()
    assert body["current"] == {"summary": "Root's summary"} and body["version"] == 2
    review.refresh_from_db()
    assert review.summary == "Root's summary"
    # A field nobody else touched saves, even from the older version.
    merged = alice.patch(url, {"version": 1, "root_cause": "expired cert"}, format="json")
    assert merged.status_code == 200 and merged.json()["summary"] == "Root's summary"
    # Having seen version 2, Alice may now overwrite the summary knowingly.
    assert alice.patch(url, {"version": 2, "summary": "Both"}, format="json").status_code == 200


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"summary": "no version"}, 400),
        ({"version": 0, "summary": "x"}, 400),
        ({"version": 99, "summary": "x"}, 400),
        ({"version": 1, "summary": "x" * 20_001}, 400),
        ({"version": 1, "state": "published"}, 400),
        ({"version": 1, "owner": "ghost"}, 400),
        ({"version": 1, "time_overrides": {"detect": {"seconds": -5, "reason": "x"}}}, 400),
        ({"version": 1, "time_overrides": {"lunch": {"seconds": 5, "reason": "x"}}}, 400),
        ({"version": 1, "customer_facing": "perhaps"}, 400),
    ],
)
def test_review_patch_bad_input(api, review, payload, status):
    response = api.patch(f"/api/reviews/{review.pk}/", payload, format="json")
    assert response.status_code == status, response.json()
    review.refresh_from_db()
    assert review.version == 1 and review.summary == ""


def test_action_items_api(api, review, responder):
    url = f"/api/reviews/{review.pk}/action-items/"
    due = tomorrow().isoformat()
    created = api.post(
        url, {"title": "Add 502 alert", "kind": "alert", "owner": "alice", "due_date": due}, format="json"
    )
    assert created.status_code == 201
    item = created.json()
    assert set(item) == {"id", "review", "title", "kind", "owner", "due_date", "status", "reason"}
    assert item["status"] == "open" and item["owner"] == "alice"

    past = (timezone.localdate() - timedelta(days=1)).isoformat()
    assert api.post(url, {"title": "late", "due_date": past}, format="json").status_code == 400
    assert api.post(url, {"title": "x", "owner": "ghost"}, format="json").status_code == 400
    assert api.post(url, {"title": "x", "kind": "wish"}, format="json").status_code == 400
    assert api.post(url, {"kind": "fix"}, format="json").status_code == 400
    assert len(api.get(url).json()) == 1

    item_url = f"/api/action-items/{item['id']}/"
    assert api.patch(item_url, {"status": "wont_do"}, format="json").status_code == 400
    response = api.patch(item_url, {"status": "wont_do", "reason": "covered by SLO alert"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "wont_do"
    assert api.patch(item_url, {"status": "done", "reason": ""}, format="json").json()["status"] == "done"


def test_review_list_filters(api, review, responder, responder2):
    other = IncidentFactory(title="Other", commander=responder2)
    other.transition_to("resolved", by=responder2)
    results = api.get("/api/reviews/?owner=bob").json()["results"]
    assert [r["incident"] for r in results] == [other.pk]
    assert api.get("/api/reviews/?overdue=true").json()["count"] == 0
    with time_machine.travel(timezone.now() + timedelta(hours=49)):
        assert api.get("/api/reviews/?overdue=true").json()["count"] == 2
    assert api.get("/api/reviews/?state=published").json()["count"] == 0
    assert api.get("/api/reviews/?state=bogus").status_code == 400
    fields = set(api.get(f"/api/reviews/{review.pk}/").json())
    assert {
        "id", "incident", "state", "owner", "due_at", "overdue", "version", "summary", "impact", "root_cause",
        "contributing_factors", "detection", "went_well", "went_poorly", "lucky", "lessons", "no_action_needed",
        "no_action_reason", "times",
    } <= fields  # fmt: skip


def test_markdown_export(api, review, responder):
    from incidents.models import TimelineEvent

    TimelineEvent.add_note(review.incident, by=responder, body="Rolled back **nginx** config", pinned=True)
    TimelineEvent.add_note(review.incident, by=responder, body="unpinned chatter")
    review.update(by=responder, version=1, summary="Checkout returned 502 for 20 minutes.", root_cause="A typo.")
    review.add_action_item(by=responder, title="Validate config in CI", kind="test", owner=responder,
                           due_date=tomorrow())  # fmt: skip
    response = api.get(f"/api/reviews/{review.pk}/export.md")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/markdown")
    text = response.content.decode()
    assert text.startswith(f"# Post-incident review: {review.incident.reference} — Checkout 502")
    assert "## Summary\n\nCheckout returned 502 for 20 minutes." in text
    assert "## Impact\n\n_(empty)_" in text
    assert "## Key moments" in text and "Rolled back **nginx** config" in text and "unpinned chatter" not in text
    assert "| Validate config in CI | Test | alice |" in text
    assert "| Time to resolve |" in text


@pytest.mark.parametrize("role,read,write", [("anonymous", 403, 403), ("viewer", 200, 403), ("responder", 200, 200),
                                             ("admin", 200, 200)])  # fmt: skip
def test_review_endpoints_per_role(api_for, review, role, read, write, responder):
    client = api_for(role)
    item = review.add_action_item(by=responder, title="t", kind="fix")
    for url in ["/api/reviews/", f"/api/reviews/{review.pk}/", f"/api/reviews/{review.pk}/action-items/",
                f"/api/reviews/{review.pk}/export.md", f"/api/incidents/{review.incident_id}/review/",
                "/api/stats/incidents/", f"/api/action-items/{item.pk}/"]:  # fmt: skip
        assert client.get(url).status_code == read, url
    assert (
        client.patch(f"/api/reviews/{review.pk}/", {"version": 2, "lucky": "yes"}, format="json").status_code == write
    )
    assert client.patch(f"/api/action-items/{item.pk}/", {"title": "t2"}, format="json").status_code == write
    created = client.post(f"/api/reviews/{review.pk}/action-items/", {"title": "n"}, format="json").status_code
    assert created == (201 if write == 200 else write)
    assert client.post(f"/api/reviews/{review.pk}/submit/").status_code == write


def test_stats_api(api, responder):
    t0 = timezone.now() - timedelta(days=3)
    incident = IncidentFactory(title="a", severity="SEV1", detected_at=t0)
    with time_machine.travel(t0 + timedelta(minutes=10), tick=False):
        incident.transition_to("acknowledged", by=responder)
    with time_machine.travel(t0 + timedelta(minutes=70), tick=False):
        incident.transition_to("resolved", by=responder)
    body = api.get("/api/stats/incidents/").json()
    assert body["days"] == 90 and len(body["weeks"]) >= 13
    points = [p for p in body["time_to"]["acknowledge"]["SEV1"] if p["count"]]
    assert points == [{"week": points[0]["week"], "count": 1, "mean": 600, "p90": 600}]
    assert [p["mean"] for p in body["time_to"]["resolve"]["SEV1"] if p["count"]] == [4200]
    assert body["reviews"]["unpublished_overdue"] == 1  # resolved three days ago, due after 48 h
    assert api.get("/api/stats/incidents/?days=abc").status_code == 400


def test_review_queries_are_constant(api, responder, django_assert_max_num_queries):
    def add(n):
        for i in range(n):
            incident = IncidentFactory(title=f"r{i}", commander=responder)
            incident.transition_to("resolved", by=responder)

    add(2)
    with django_assert_max_num_queries(8) as few:
        assert api.get("/api/reviews/").status_code == 200
    add(20)
    with django_assert_max_num_queries(8) as many:
        assert api.get("/api/reviews/").status_code == 200
    assert len(few.captured_queries) == len(many.captured_queries)


def test_stale_concurrent_update_verb_raises_conflict(review, responder):
    other = UserFactory(username="carol", role="responder")
    review.update(by=other, version=1, lessons="theirs")
    with pytest.raises(Conflict):
        PostIncidentReview.objects.get(pk=review.pk).update(by=responder, version=1, lessons="mine")
