"""The runs card on the live incident page refreshes when a run starts or a step moves."""

import json

import pytest

from runbooks.models import RunbookRun
from tests.runbooks.conftest import make_runbook, manual

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


def test_a_run_started_by_a_colleague_refreshes_the_runs_card(client, viewer, incident, responder):
    client.force_login(viewer)
    page = client.get(f"/incidents/{incident.pk}/").content.decode()
    token = page.split("?since=")[1].split('"')[0]
    runbook = make_runbook(steps=[manual("Check the dashboards")])
    run = RunbookRun.start(runbook, by=responder, incident=incident)
    response = client.get(f"/incidents/{incident.pk}/live/", {"since": token}, **HX)
    assert response.status_code == 200
    assert {"live:runs", "live:timeline"} <= set(json.loads(response["HX-Trigger"]))
    card = client.get(f"/runbooks/for-incident/{incident.pk}/", **HX)
    assert card.status_code == 200 and f"Run #{run.pk}" in card.content.decode()
    assert 'hx-trigger="live:runs from:body"' in card.content.decode()
