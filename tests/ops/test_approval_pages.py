"""A dangerous ops request waiting for approval pages the other admins (on-call ones first), never
the requester, with the link to the request; nobody to page is a warning, not silence."""

import logging
import uuid
from datetime import UTC, datetime

import pytest
import time_machine
from django.core import mail
from django.urls import reverse
from rest_framework.test import APIClient

from incidents.models import Page
from incidents.models.alerts import portal_base_url
from ops.models import FailedTask
from opsportal.celery import app as celery_app
from tests.factories import IncidentFactory, UserFactory
from tests.runbooks.test_approval_pages import on_call

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def eager_tasks():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture
def people(db):
    """root asks; erin and frank are the other admins; alice responds (she may not approve ops requests)."""
    return {
        name: UserFactory(username=name, email=f"{name}@example.com", role=role, is_staff=role == "admin")
        for name, role in (("root", "admin"), ("erin", "admin"), ("frank", "admin"), ("alice", "responder"))
    }


def ask(user, incident=None, django_capture_on_commit_callbacks=None):
    failed = FailedTask.objects.create(task_id=uuid.uuid4().hex, name="x.poison", queue="celery", exception="E: bad")
    client = APIClient()
    client.force_authenticate(user)
    body = {"action": "remove_task", "params": {"ids": [failed.pk]}, "reason": "poison message, retries loop"}
    if incident is not None:
        body["incident"] = incident.pk
    with time_machine.travel(T0, tick=False), django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/ops/requests", body, format="json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def test_the_on_call_admin_is_paged_with_the_link_to_the_request(people, django_capture_on_commit_callbacks):
    on_call(people["frank"])
    incident = IncidentFactory(title="Queue stuck", created_by=people["root"])
    mail.outbox.clear()
    pk = ask(people["root"], incident, django_capture_on_commit_callbacks)
    [message] = mail.outbox
    assert message.to == ["frank@example.com"]
    assert message.subject == (
        f"Approval needed: root asks another admin to approve `remove_task` (request #{pk}): "
        "poison message, retries loop"
    )
    link = f"{portal_base_url()}{reverse('ops:console')}#request-{pk}"
    assert f"Approve or reject it here: {link}" in message.body
    assert "/incidents/page/" not in message.body
    [page] = Page.objects.filter(purpose="approval")
    assert (page.user, page.incident, page.link, page.state) == (people["frank"], incident, link, "sent")
    assert incident.events.filter(body=f"Paged frank for approval of `remove_task` (request #{pk}).").exists()


def test_an_on_call_responder_cannot_approve_so_every_other_admin_is_paged(people, django_capture_on_commit_callbacks):
    on_call(people["alice"])
    pk = ask(people["root"], None, django_capture_on_commit_callbacks)
    assert [m.to for m in mail.outbox] == [["erin@example.com"], ["frank@example.com"]]
    pages = Page.objects.filter(purpose="approval")
    assert {p.user.username for p in pages} == {"erin", "frank"}
    assert {(p.incident, p.via, p.source_key) for p in pages} == {(None, "approver", f"ops-approval:{pk}")}


def test_the_requester_is_never_paged_even_on_call(people, django_capture_on_commit_callbacks):
    on_call(people["root"])
    ask(people["root"], None, django_capture_on_commit_callbacks)
    assert sorted(m.to[0] for m in mail.outbox) == ["erin@example.com", "frank@example.com"]
    assert not Page.objects.filter(user=people["root"]).exists()


def test_no_other_admin_is_a_warning_in_the_log_and_the_notification_log(
    db, django_capture_on_commit_callbacks, caplog
):
    root = UserFactory(username="root", email="root@example.com", role="admin", is_staff=True)
    with caplog.at_level(logging.WARNING, logger="incidents.alerting.paging"):
        pk = ask(root, None, django_capture_on_commit_callbacks)
    assert mail.outbox == []
    [page] = Page.objects.filter(purpose="approval")
    assert (page.state, page.incident, page.error) == (
        "unrouted",
        None,
        "nobody other than the requester may approve it",
    )
    assert f"nobody to page for approval of `remove_task` (request #{pk})" in caplog.text
