"""ops.approval_requested belongs to the ops app: ops registers it and builds its payload, incidents
lists and delivers it like its own events without naming it."""

import json
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from incidents.models import WebhookDelivery, WebhookEndpoint
from incidents.notifications.registry import event_choices
from ops.models import FailedTask
from ops.notifications import APPROVAL_REQUESTED, APPROVAL_REQUESTED_LABEL

pytestmark = pytest.mark.django_db


def test_the_approval_event_is_registered_by_ops_and_listed_in_the_admin(admin_client):
    assert (APPROVAL_REQUESTED, APPROVAL_REQUESTED_LABEL) in event_choices()
    hook = WebhookEndpoint.objects.create(name="hook", url="http://127.0.0.1:9/hook", events=[])
    page = admin_client.get(f"/admin/incidents/webhookendpoint/{hook.pk}/change/").content.decode()
    assert 'type="checkbox" name="events" value="ops.approval_requested"' in page
    assert APPROVAL_REQUESTED_LABEL in page


def test_incidents_does_not_name_the_ops_event():
    app = Path(settings.BASE_DIR) / "incidents"
    naming = [
        str(path.relative_to(app))
        for path in app.rglob("*.py")
        if "migrations" not in path.parts and "approval_requested" in path.read_text()
    ]
    assert naming == []


def test_a_slack_endpoint_hears_an_approval_request_with_a_link_to_it(api_for, incident):
    failed = FailedTask.objects.create(task_id=uuid.uuid4().hex, name="x.poison", queue="celery", exception="E")
    WebhookEndpoint.objects.create(
        name="chat", url="http://127.0.0.1:9/chat", secret="s", format="slack", events=[APPROVAL_REQUESTED]
    )
    body = {"action": "remove_task", "params": {"ids": [failed.pk]}, "reason": "poison <message> & loop"}
    asked = api_for("admin").post("/api/ops/requests", body, format="json").json()

    delivery = WebhookDelivery.objects.get(event=APPROVAL_REQUESTED)
    assert json.loads(delivery.body()) == {
        "text": (
            f"root asks another admin to approve `remove_task` (request #{asked['id']}): "
            f"poison &lt;message&gt; &amp; loop <http://127.0.0.1:8000/ops/#request-{asked['id']}|"
            f"Open request #{asked['id']}>"
        )
    }
