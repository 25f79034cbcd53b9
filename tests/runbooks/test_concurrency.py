"""Row locks on the real PostgreSQL: two responders acting on the same run at the same moment."""

import threading

import pytest
from django.db import connection

from opsportal.errors import Conflict
from runbooks.models import RunbookRun
from tests.factories import IncidentFactory, UserFactory
from tests.runbooks.conftest import make_runbook, manual

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def at_once(*actions) -> list[str]:
    barrier = threading.Barrier(len(actions))
    results: list[str] = []

    def call(action):
        try:
            barrier.wait(timeout=10)
            action()
            results.append("ok")
        except Conflict as exc:
            results.append(str(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=call, args=(a,)) for a in actions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


def test_two_responders_starting_the_same_runbook_for_an_incident_make_one_run():
    alice, bob = UserFactory(username="alice", role="responder"), UserFactory(username="bob", role="responder")
    runbook = make_runbook(steps=[manual("a")])
    incident = IncidentFactory()
    results = at_once(
        lambda: RunbookRun.start(runbook, by=alice, incident=incident),
        lambda: RunbookRun.start(runbook, by=bob, incident=incident),
    )
    assert results.count("ok") == 1 and "is still waiting for input" in next(r for r in results if r != "ok")
    assert RunbookRun.objects.count() == 1


def test_two_responders_ticking_the_same_step_tick_it_once():
    alice, bob = UserFactory(username="alice", role="responder"), UserFactory(username="bob", role="responder")
    run = RunbookRun.start(make_runbook(steps=[manual("a"), manual("b")]), by=alice, incident=IncidentFactory())
    step = run.step_runs.get(order=1)
    results = at_once(
        lambda: RunbookRun.objects.get(pk=run.pk).complete_step(step.pk, by=alice),
        lambda: RunbookRun.objects.get(pk=run.pk).complete_step(step.pk, by=bob),
    )
    assert results.count("ok") == 1 and "Step 1 is already done by" in next(r for r in results if r != "ok")
    assert run.incident.events.filter(kind="runbook", body__contains="Step 1/2 **a** done").count() == 1
