"""A review's `runbook` action item opens a draft of the next version of a runbook used in the incident."""

from datetime import timedelta

import pytest
from django.utils import timezone

from opsportal.errors import DomainError
from runbooks.importer import import_document
from runbooks.models import Runbook, RunbookDraft, RunbookRun
from runbooks.models.draft import TODO_MARKER
from tests.factories import IncidentFactory

pytestmark = pytest.mark.django_db

DOCUMENT = """# Checkout runbooks

## Checkout 502s

### Diagnostic Steps

1. Look at the nginx error log for upstream failures
2. Check the last deploy in the release channel
"""


@pytest.fixture
def runbook(admin_user):
    import_document(DOCUMENT.encode(), name="checkout.md", by=admin_user)
    return Runbook.objects.get(title="Checkout 502s")


@pytest.fixture
def item(responder):
    incident = IncidentFactory(title="Checkout 502", commander=responder)
    incident.transition_to("resolved", by=responder)
    review = incident.review
    return review.add_action_item(
        by=responder, title="Add a step: check upstream keepalive", kind="runbook", owner=responder,
        due_date=timezone.localdate() + timedelta(days=3),
    )  # fmt: skip


def test_a_draft_needs_a_runbook_run_for_the_incident(item, runbook, responder):
    with pytest.raises(DomainError, match="was not run for"):
        RunbookDraft.open_for(item, runbook, by=responder)


def test_open_edit_and_publish_a_draft(item, runbook, responder, admin_user):
    RunbookRun.start(runbook, by=responder, incident=item.review.incident)
    draft = RunbookDraft.open_for(item, runbook, by=responder)
    assert RunbookDraft.open_for(item, runbook, by=responder).pk == draft.pk
    assert draft.source.splitlines()[0] == "## Checkout 502s"
    assert f"{TODO_MARKER} of {item.review.incident.reference}: Add a step: check upstream keepalive" in draft.source

    with pytest.raises(DomainError, match="TODO line"):
        draft.publish(by=admin_user)
    edited = (
        draft.source.replace(
            f"{TODO_MARKER} of {item.review.incident.reference}: Add a step: check upstream keepalive\n", ""
        ).rstrip("\n")
        + "\n3. Check upstream keepalive settings in nginx\n"
    )
    draft.save_source(by=responder, source=edited)
    version = draft.publish(by=admin_user)

    runbook.refresh_from_db()
    assert runbook.version == 2 == version.number
    assert [s.title for s in version.steps.order_by("order")][-1].startswith("Check upstream keepalive")
    assert "review of" in version.note
    item.refresh_from_db()
    assert item.status == "done"
    draft.refresh_from_db()
    assert draft.state == "published" and draft.published_version == version
    with pytest.raises(DomainError, match="already published"):
        draft.publish(by=admin_user)


def test_publishing_an_unchanged_draft_is_refused(item, runbook, responder, admin_user):
    RunbookRun.start(runbook, by=responder, incident=item.review.incident)
    draft = RunbookDraft.open_for(item, runbook, by=responder)
    draft.save_source(by=responder, source=runbook.current_version.source)
    with pytest.raises(DomainError, match="nothing to publish"):
        draft.publish(by=admin_user)
    assert Runbook.objects.get(pk=runbook.pk).version == 1


def test_only_runbook_items_open_drafts(item, runbook, responder):
    item.change(by=responder, kind="fix")
    RunbookRun.start(runbook, by=responder, incident=item.review.incident)
    with pytest.raises(DomainError, match="Only a runbook action item"):
        RunbookDraft.open_for(item, runbook, by=responder)


def test_portal_flow_from_the_review_page(client, item, runbook, responder, admin_user):
    RunbookRun.start(runbook, by=responder, incident=item.review.incident)
    client.force_login(responder)
    review_page = client.get(f"/reviews/{item.review_id}/").content.decode()
    assert "Open runbook draft" in review_page and "Checkout 502s" in review_page

    opened = client.post(f"/runbooks/drafts/from-action-item/{item.pk}/", {"runbook": runbook.pk})
    draft = RunbookDraft.objects.get()
    assert opened.status_code == 302 and opened["Location"] == f"/runbooks/drafts/{draft.pk}/"
    page = client.get(opened["Location"]).content.decode()
    assert "What to change:" in page and "Add a step: check upstream keepalive" in page

    source = draft.source.split("\n", 3)
    new_source = "\n".join([source[0], *source[3:]]).rstrip("\n") + "\n3. Check upstream keepalive\n"
    refused = client.post(f"/runbooks/drafts/{draft.pk}/", {"action": "publish", "source": new_source})
    assert refused.status_code == 403
    draft.refresh_from_db()
    assert draft.source == new_source and draft.state == "open"  # saved, not published

    client.force_login(admin_user)
    published = client.post(f"/runbooks/drafts/{draft.pk}/", {"action": "publish", "source": new_source})
    assert published.status_code == 302
    assert Runbook.objects.get(pk=runbook.pk).version == 2
    assert "Published draft of Checkout 502s" in client.get(f"/reviews/{item.review_id}/").content.decode()


@pytest.mark.parametrize("runbook_id", ["", "999999", "abc"])
def test_open_draft_bad_input(client, item, responder, runbook_id):
    client.force_login(responder)
    response = client.post(f"/runbooks/drafts/from-action-item/{item.pk}/", {"runbook": runbook_id})
    assert response.status_code == 400
    assert not RunbookDraft.objects.exists()


def test_viewer_cannot_open_drafts(client, item, runbook, viewer, responder):
    RunbookRun.start(runbook, by=responder, incident=item.review.incident)
    client.force_login(viewer)
    assert client.post(f"/runbooks/drafts/from-action-item/{item.pk}/", {"runbook": runbook.pk}).status_code == 403


@pytest.mark.parametrize("action", ["explode", "", "SAVE"])
def test_an_unknown_draft_action_is_a_400_that_changes_nothing(client, item, runbook, responder, action):
    RunbookRun.start(runbook, by=responder, incident=item.review.incident)
    client.force_login(responder)
    client.post(f"/runbooks/drafts/from-action-item/{item.pk}/", {"runbook": runbook.pk})
    draft = RunbookDraft.objects.get()
    before = draft.source
    response = client.post(f"/runbooks/drafts/{draft.pk}/", {"action": action, "source": before + "\nchanged\n"})
    assert response.status_code == 400
    assert "action: unknown action" in response.content.decode()
    draft.refresh_from_db()
    assert draft.source == before and draft.state == "open"
