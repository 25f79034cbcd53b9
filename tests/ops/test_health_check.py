"""The daily health check: a runbook run against the portal itself, kept like any run; a failing
check opens an incident (SEV3 by default)."""

import pytest

from incidents.models import Incident
from ops.health_check import SLUG
from ops.tasks import daily_health_check
from runbooks.models import Runbook, RunbookRun
from tests.runbooks.conftest import free_port, wait_for

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


def test_a_failing_daily_check_opens_an_incident(celery_worker, settings):
    settings.PORTAL_BASE_URL = f"http://127.0.0.1:{free_port()}"  # the portal's API does not answer
    settings.RUNBOOK_STEP_RETRIES = 0
    run = RunbookRun.objects.get(pk=daily_health_check())
    titles = list(run.step_runs.order_by("order").values_list("step__title", flat=True))
    assert titles[:2] == ["API health", "Queue stats"] and titles[-1] == "Recent errors (failed tasks)"
    assert {"Disk under 80 %", "Memory under 80 %"} <= set(titles)
    assert run.target.slug == "ops-portal" and run.target.base_url == settings.PORTAL_BASE_URL
    incident = wait_for(lambda: Incident.objects.filter(title="Daily health check failed").first(), timeout=60,
                        message="the incident")  # fmt: skip
    assert incident.severity == "SEV3"
    assert "- API health: Failed" in incident.summary and f"Run #{run.pk}" in incident.summary
    run.refresh_from_db()
    assert run.state == "failed" and run.incident == incident


def test_the_runbook_is_reused_day_after_day(celery_worker, settings, http_service):
    settings.PORTAL_BASE_URL = http_service
    first, second = daily_health_check(), daily_health_check()
    assert first != second
    assert Runbook.objects.filter(slug=SLUG).count() == 1
    assert Runbook.objects.get(slug=SLUG).versions.count() == 1
    wait_for(lambda: not RunbookRun.objects.active().exists(), timeout=60, message="the runs to finish")
