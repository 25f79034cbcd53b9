"""The approvals inbox: what waits for me on the dashboard and in the navigation badge, who the
run card names as approvers, and the approver's note staying on the run page and the timeline."""

import pytest

from ops import approvals
from runbooks.models import RunbookRun
from tests.factories import IncidentFactory, UserFactory
from tests.runbooks.conftest import make_runbook, manual

pytestmark = pytest.mark.django_db


def dangerous_manual(title: str) -> dict:
    return manual(title, safety="dangerous")


@pytest.fixture
def waiting_run(responder, incident):
    """alice started a run whose first step is dangerous: it waits for someone else."""
    runbook = make_runbook("Failover", steps=[dangerous_manual("Promote the replica"), manual("Check lag")])
    return RunbookRun.start(runbook, by=responder, incident=incident)


def test_the_starter_sees_no_inbox_and_the_card_names_others(client, responder, responder2, waiting_run, incident):
    client.force_login(responder)
    home = client.get("/").content.decode()
    assert "Waiting for your approval" not in home and 'data-testid="approvals-badge"' not in home
    card = client.get(f"/runbooks/for-incident/{incident.pk}/").content.decode()
    assert 'data-testid="run-approvers">· can approve: bob</span>' in card
    run_page = client.get(waiting_run.get_absolute_url()).content.decode()
    assert "has to approve it: bob." in run_page


def test_another_responder_sees_it_in_the_inbox_and_the_badge(client, responder2, waiting_run, incident):
    client.force_login(responder2)
    home = client.get("/").content.decode()
    assert "Waiting for your approval" in home
    assert "Step 1: Promote the replica (dangerous)" in home and f"{incident.reference}" in home
    assert "asked by alice" in home and f"{waiting_run.get_absolute_url()}#step-run-" in home
    badge = client.get("/incidents/").content.decode()
    assert 'data-testid="approvals-badge"' in badge and 'aria-label="1 waiting for your approval">1<' in badge


def test_viewers_never_get_an_inbox(client, viewer, waiting_run):
    client.force_login(viewer)
    assert "Waiting for your approval" not in client.get("/").content.decode()
    assert "approvals-badge" not in client.get("/incidents/").content.decode()


def test_the_approvers_note_stays_on_the_run_page_and_the_timeline(client, responder, responder2, waiting_run):
    step = waiting_run.step_runs.order_by("order").first()
    waiting_run.approve_step(step.pk, by=responder2, note="Replica is in sync, go")
    # The starter then does the (manual) step with a note of their own.
    waiting_run.complete_step(step.pk, by=responder, note="Promoted at 14:02")
    client.force_login(responder)
    page = client.get(waiting_run.get_absolute_url()).content.decode()
    assert "bob on approving:</span> “Replica is in sync, go”" in page
    assert "“Promoted at 14:02”" in page
    bodies = " ".join(waiting_run.incident.events.values_list("body", flat=True))
    assert "Replica is in sync, go" in bodies and "Promoted at 14:02" in bodies
    client.force_login(responder2)
    assert "Waiting for your approval" not in client.get("/").content.decode()


def test_the_rejection_note_stays_on_the_run_page(client, responder2, waiting_run):
    step = waiting_run.step_runs.order_by("order").first()
    waiting_run.reject_step(step.pk, by=responder2, note="Not during the sale")
    client.force_login(responder2)
    page = client.get(waiting_run.get_absolute_url()).content.decode()
    assert "bob on rejecting:</span> “Not during the sale”" in page


def test_admins_see_ops_requests_another_admin_asked_for(client, admin_user):
    other = UserFactory(username="second", role="admin")
    approvals.ask("cache_flush", {}, by=other, reason="Stale prices after the import")
    client.force_login(admin_user)
    home = client.get("/").content.decode()
    assert "cache_flush: Stale prices after the import" in home and "asked by second" in home
    client.force_login(other)
    assert "Stale prices after the import" not in client.get("/").content.decode()


def test_the_dashboard_query_count_does_not_grow_with_waiting_items(
    client, responder, responder2, django_assert_max_num_queries
):
    for n in range(2):
        runbook = make_runbook(f"Failover {n}", steps=[dangerous_manual("Promote")])
        RunbookRun.start(runbook, by=responder, incident=IncidentFactory(title=f"DB {n}"))
    client.force_login(responder2)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        client.get("/")
    for n in range(2, 8):
        runbook = make_runbook(f"Failover {n}", steps=[dangerous_manual("Promote")])
        RunbookRun.start(runbook, by=responder, incident=IncidentFactory(title=f"DB {n}"))
    with django_assert_max_num_queries(len(few)):
        body = client.get("/").content.decode()
    assert body.count("Step 1: Promote (dangerous)") == 8
