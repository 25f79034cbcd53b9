"""First looks and lost messages through a real Celery worker (one solo worker thread, so the
order in which steps start is the order the broker hands them out)."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from incidents.models import TimelineEvent
from runbooks.models import RunbookRun, StepRun
from runbooks.tasks import reap_stuck_steps, run_step
from tests.factories import IncidentFactory, UserFactory
from tests.runbooks.conftest import auto, make_runbook, wait_for

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


def finished(run: RunbookRun, timeout: float = 60) -> RunbookRun:
    return wait_for(
        lambda: RunbookRun.objects.filter(pk=run.pk, finished_at__isnull=False).first(),
        timeout=timeout,
        message=f"run #{run.pk} to finish",
    )


def first_look_runbook(target, alert: str, count: int, path: str = "/health"):
    checks = [auto("http_check", {"path": path}, title=f"{alert} check {n}") for n in range(1, count + 1)]
    return make_runbook(f"{alert} runbook", steps=checks, services=[target], alert_names=[alert])


def start_first_look(runbook, alert: str, target) -> RunbookRun:
    return RunbookRun.start(runbook, by=None, incident=IncidentFactory(services=[target]), first_look=alert)


def test_one_incident_s_many_checks_do_not_delay_another_incident_s_first(celery_worker, target, settings):
    """A first look queues at most RUNBOOK_FIRST_LOOK_CONCURRENCY checks at once, each finished
    check releasing the next: a first look that starts later waits behind those few, never behind
    all 25."""
    settings.RUNBOOK_FIRST_LOOK_CONCURRENCY = 4
    big = first_look_runbook(target, "ManyChecks", 25)
    small = first_look_runbook(target, "OneCheck", 1)
    with transaction.atomic():  # both published at the same commit: the big one first
        many = start_first_look(big, "ManyChecks", target)
        one = start_first_look(small, "OneCheck", target)
    # 26 checks one after another on a solo worker: on a machine shared with another suite that
    # has taken over a minute, so this waits longer (a wait, not a timing assertion).
    many, one = finished(many, timeout=240), finished(one, timeout=240)
    assert many.state == one.state == "succeeded" and many.summary == "25 succeeded"
    lone = one.step_runs.get()
    before = many.step_runs.filter(started_at__lt=lone.started_at).count()
    assert before <= 4, f"{before} checks of the other incident ran before this incident's only check"
    # Each check is on the timeline, once, and the run's end is written once by the last one.
    lines = list(TimelineEvent.objects.filter(incident=many.incident, kind="runbook").values_list("body", flat=True))
    assert len(lines) == 1 + 25 + 1 and sum("succeeded: 25 succeeded." in line for line in lines) == 1


def test_the_checks_of_a_first_look_are_queued_together(celery_worker, target, settings):
    settings.RUNBOOK_FIRST_LOOK_CONCURRENCY = 3
    run = finished(start_first_look(first_look_runbook(target, "Four", 4), "Four", target))
    steps = list(run.step_runs.order_by("order"))
    assert run.state == "succeeded" and [s.state for s in steps] == ["succeeded"] * 4
    # The first three were queued by the start, at once; the fourth when one of them finished.
    assert steps[0].enqueued_at == steps[1].enqueued_at == steps[2].enqueued_at
    assert steps[3].enqueued_at >= min(s.finished_at for s in steps[:3])
    assert all(s.attempts == 1 for s in steps)


def test_cancelling_a_first_look_stops_the_checks_not_started(celery_worker, target, settings, client):
    settings.RUNBOOK_FIRST_LOOK_CONCURRENCY = 2
    run = start_first_look(first_look_runbook(target, "Slow", 4, path="/slow?ms=1500"), "Slow", target)
    wait_for(lambda: run.step_runs.filter(state="running").exists(), message="a check to start")
    bob = UserFactory(username="bob", role="responder")
    client.force_login(bob)
    assert client.post(f"/api/runs/{run.pk}/cancel/").status_code == 200
    run = finished(run)
    states = list(run.step_runs.order_by("order").values_list("state", flat=True))
    assert run.state == "cancelled" and states == ["succeeded", "cancelled", "cancelled", "cancelled"]
    assert not run.step_runs.filter(state="cancelled", attempts__gt=0).exists()


def test_a_queued_step_whose_message_was_lost_is_published_again_and_runs_once(
    celery_worker, target, settings, monkeypatch
):
    settings.RUNBOOK_STEP_REPUBLISH_AFTER = 60
    alice = UserFactory(username="alice", role="responder")
    runbook = make_runbook(steps=[auto("http_check", {"path": "/health"}, title="Health")], services=[target])
    incident = IncidentFactory(services=[target])
    with monkeypatch.context() as lost:
        # The process dies between the commit and the publish: the step is queued, no message exists.
        lost.setattr(transaction, "on_commit", lambda callback, using=None, robust=False: None)
        run = RunbookRun.start(runbook, by=alice, incident=incident)
    step = run.step_runs.get()
    assert step.enqueued_at is not None
    assert reap_stuck_steps() == 0 and StepRun.objects.get(pk=step.pk).published_at is None  # not yet a minute
    StepRun.objects.filter(pk=step.pk).update(enqueued_at=timezone.now() - timedelta(seconds=90))
    reap_stuck_steps()  # publishes it again
    reap_stuck_steps()  # within the interval: not a second time
    run = finished(run)
    step.refresh_from_db()
    assert run.state == "succeeded" and step.state == "succeeded" and step.attempts == 1 and step.published_at
    # A late duplicate of the same attempt changes nothing.
    assert run_step(step.pk, 1) == "skipped"
    assert TimelineEvent.objects.filter(incident=incident, body__contains="**Health** succeeded").count() == 1


def test_a_step_the_broker_refused_waits_then_the_sweep_queues_it_and_the_run_finishes(
    celery_worker, target, settings, broker_down
):
    settings.RUNBOOK_STEP_REPUBLISH_AFTER = 60
    alice = UserFactory(username="alice", role="responder")
    runbook = make_runbook(steps=[auto("http_check", {"path": "/health"}, title="Health")], services=[target])
    incident = IncidentFactory(services=[target])
    run = RunbookRun.start(runbook, by=alice, incident=incident)
    step = run.step_runs.get()
    assert step.state == "pending" and step.enqueued_at is not None
    assert step.output.endswith("it will be queued again when the broker answers.\n")

    broker_down.back()
    StepRun.objects.filter(pk=step.pk).update(enqueued_at=timezone.now() - timedelta(seconds=90))
    reap_stuck_steps()  # publishes it again, on the broker that answers now
    run = finished(run)
    step.refresh_from_db()
    assert run.state == "succeeded" and step.state == "succeeded" and step.attempts == 1
    bodies = list(TimelineEvent.objects.filter(incident=incident).values_list("body", flat=True))
    assert sum("Could not queue the step for a worker" in b for b in bodies) == 1
    assert sum("**Health** succeeded" in b for b in bodies) == 1
