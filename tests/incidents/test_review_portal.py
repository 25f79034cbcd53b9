from datetime import timedelta

import pytest
from django.utils import timezone

from incidents.models import ActionItem
from tests.factories import IncidentFactory

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def review(responder):
    incident = IncidentFactory(title="Checkout 502", commander=responder)
    incident.transition_to("resolved", by=responder)
    return incident.review


@pytest.fixture
def browser(client, responder):
    client.force_login(responder)
    return client


def save(client, review, field, value, version):
    return client.post(f"/reviews/{review.pk}/save/", {"field": field, "value": value, "version": version}, **HX)


def test_review_page_print_and_list(browser, review):
    page = browser.get(f"/reviews/{review.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Summary is empty" in html and 'id="field-root_cause"' in html and "Time to resolve" in html
    printable = browser.get(f"/reviews/{review.pk}/print/").content.decode()
    assert "Post-incident review: " in printable and "print.css" in printable
    listing = browser.get("/reviews/").content.decode()
    assert "Checkout 502" in listing and "<svg" in listing and "Reviews due" in listing
    incident_page = browser.get(f"/incidents/{review.incident_id}/").content.decode()
    assert f"/reviews/{review.pk}/" in incident_page


def test_autosave_a_field_updates_the_version_and_the_checklist(browser, review):
    response = save(browser, review, "summary", "It broke.", 1)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Saved" in html and 'id="version-summary" value="2"' in html and "Summary is empty" not in html
    review.refresh_from_db()
    assert review.summary == "It broke." and review.changes.get().old_value == ""


def test_conflicting_save_shows_both_texts_and_keeps_the_stale_version(browser, review, responder2):
    review.update(by=responder2, version=1, summary="Bob's words")
    response = save(browser, review, "summary", "Alice's words", 1)
    assert response.status_code == 409
    html = response.content.decode()
    assert "Someone else changed this field" in html and "Bob&#x27;s words" in html and "Alice&#x27;s words" in html
    assert 'data-resolve="theirs" data-version="2"' in html and 'data-resolve="mine" data-version="2"' in html
    assert "hx-swap-oob" not in html.split("</div>")[0]
    review.refresh_from_db()
    assert review.summary == "Bob's words"
    assert save(browser, review, "summary", "Alice's words", 2).status_code == 200


def test_bad_saves_are_400(browser, review):
    assert save(browser, review, "owner", "x", 1).status_code == 400
    assert save(browser, review, "summary", "x", "one").status_code == 400
    assert save(browser, review, "summary", "x" * 20_001, 1).status_code == 400
    review.refresh_from_db()
    assert review.version == 1


def test_customer_facing_and_no_action_needed(browser, review):
    assert save(browser, review, "customer_facing", "true", 1).status_code == 200
    assert save(browser, review, "no_action_needed", "true", 1).status_code == 200
    review.refresh_from_db()
    assert review.customer_facing is True and review.no_action_needed is True


def test_action_items_in_place(browser, review, responder):
    due = (timezone.localdate() + timedelta(days=3)).isoformat()
    item_data = {"title": "Add alert", "kind": "alert", "owner": responder.pk, "due_date": due}
    added = browser.post(f"/reviews/{review.pk}/action-items/", item_data, **HX)
    assert added.status_code == 200 and b'value="Add alert"' in added.content
    item = ActionItem.objects.get()
    past = (timezone.localdate() - timedelta(days=1)).isoformat()
    late = browser.post(f"/reviews/{review.pk}/action-items/", {"title": "Late", "kind": "fix", "due_date": past}, **HX)
    assert late.status_code == 400 and b"cannot be in the past" in late.content and b'value="Late"' in late.content
    edited = browser.post(f"/reviews/action-items/{item.pk}/", {**item_data, "title": "Add 502 alert"}, **HX)
    assert edited.status_code == 200
    assert browser.post(f"/reviews/action-items/{item.pk}/", {"status": "wont_do"}, **HX).status_code == 400
    done = browser.post(f"/reviews/action-items/{item.pk}/", {"status": "done"}, **HX)
    assert done.status_code == 200
    item.refresh_from_db()
    assert item.title == "Add 502 alert" and item.status == "done" and item.completed_at


def test_publish_from_the_page_lists_missing_pieces(browser, review, responder):
    response = browser.post(f"/reviews/{review.pk}/publish/", **HX)
    assert response.status_code == 400 and b"cannot be published yet" in response.content
    review.update(by=responder, version=1, summary="s", impact="i", root_cause="r", no_action_needed=True,
                  no_action_reason="vendor outage")  # fmt: skip
    published = browser.post(f"/reviews/{review.pk}/publish/", **HX)
    assert published.status_code == 200 and published["HX-Refresh"] == "true"
    page = browser.get(f"/reviews/{review.pk}/").content.decode()
    assert "Reopen for amendments" in page and "readonly" in page
    assert "(on time)" in page and "data-countdown" not in page  # a published review counts down nothing
    reopened = browser.post(f"/reviews/{review.pk}/reopen/", {"reason": "wrong root cause"}, **HX)
    assert reopened.status_code == 200
    review.refresh_from_db()
    assert review.state == "draft"


def test_time_override_form(browser, review):
    bad = browser.post(f"/reviews/{review.pk}/times/", {"metric": "detect", "minutes": "5"}, **HX)
    assert bad.status_code == 400 and b"needs a reason" in bad.content
    ok = browser.post(f"/reviews/{review.pk}/times/", {"metric": "detect", "minutes": "5", "reason": "lag"}, **HX)
    assert ok.status_code == 200 and b"overridden: lag" in ok.content
    nan = browser.post(f"/reviews/{review.pk}/times/", {"metric": "detect", "minutes": "abc", "reason": "x"}, **HX)
    assert nan.status_code == 400


def test_viewer_reads_but_cannot_write(client, viewer, review):
    client.force_login(viewer)
    assert client.get(f"/reviews/{review.pk}/").status_code == 200
    assert save(client, review, "summary", "x", 1).status_code == 403
    assert client.post(f"/reviews/{review.pk}/publish/", **HX).status_code == 403
    assert client.post(f"/reviews/{review.pk}/action-items/", {"title": "x", "kind": "fix"}, **HX).status_code == 403
