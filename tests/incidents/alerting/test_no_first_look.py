"""An incident whose alert starts no first look says why on its timeline, in one line."""

import pytest

from incidents.models import Incident, TimelineEvent
from runbooks.models import RunbookRun
from tests.incidents.alerting.payloads import alert, alertmanager

pytestmark = pytest.mark.django_db


def runbook_lines(incident) -> list[str]:
    return list(TimelineEvent.objects.filter(incident=incident, kind="runbook").values_list("body", flat=True))


def test_an_integration_with_first_looks_off_says_so_once(post_alerts, integration, django_capture_on_commit_callbacks):
    integration.run_first_look = False
    integration.save()
    with django_capture_on_commit_callbacks(execute=True):
        post_alerts(alertmanager(alert(instance="a")))
        post_alerts(alertmanager(alert(instance="a"), alert(instance="b")))  # same incident: no second line
    incident = Incident.objects.get()
    assert runbook_lines(incident) == ["First look skipped: integration **prod-alertmanager** has first looks off."]
    assert not RunbookRun.objects.exists()


def test_an_alert_no_runbook_answers_says_so_once(post_alerts, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post_alerts(alertmanager(alert(instance="a")))
        post_alerts(alertmanager(alert(instance="a"), alert(instance="b")))
    incident = Incident.objects.get()
    assert runbook_lines(incident) == ["No first look: no runbook answers alert `APIHigh5xxRate`."]
