"""The run engine through its verbs, with the worker task called in-process (the real worker is in
test_worker.py): queueing, ticking, approvals, cancel, retries, idempotence, the reaper, masking."""

import base64
import logging
import re
from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import PermissionDenied
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from incidents.models import TimelineEvent
from opsportal.celery import app as celery_app
from opsportal.errors import Conflict, DomainError
from runbooks.models import RunbookRun, StepRun
from runbooks.tasks import reap_stuck_steps, run_step
from tests.factories import IncidentFactory, ServiceFactory
from tests.runbooks.conftest import auto, make_runbook, manual

pytestmark = pytest.mark.django_db

HEALTH = auto("http_check", {"path": "/health"}, title="API health")


def work(step_run: StepRun) -> str:
    """What the worker does with the queued attempt of this step."""
    step_run.refresh_from_db()
    return run_step(step_run.pk, step_run.attempts + 1)


def steps(run: RunbookRun) -> list[StepRun]:
    return list(run.step_runs.select_related("step").order_by("order"))


def events(incident) -> list[str]:
    return list(TimelineEvent.objects.filter(incident=incident, kind="runbook").values_list("body", flat=True))


@pytest.fixture
def incident(responder):
    return IncidentFactory(title="APIHigh5xxRate on checkout", created_by=responder)


def test_start_records_the_version_queues_the_first_automated_step_after_commit(
    responder, incident, target, django_capture_on_commit_callbacks
):
    runbook = make_runbook(steps=[HEALTH, manual("Look at the dashboard")], services=[target])
    with django_capture_on_commit_callbacks() as queued:
        run = RunbookRun.start(runbook, by=responder, incident=incident)
    assert len(queued) == 1  # published only once the transaction commits
    assert (run.state, run.version.number, run.target, run.step_count) == ("queued", 1, target, 2)
    first, second = steps(run)
    assert first.state == "pending" and first.enqueued_at is not None and second.enqueued_at is None
    assert "Runbook **Checkout checks** v1 started by alice: 2 steps (1 automated, 0 dangerous)" in events(incident)[0]


def test_a_worker_runs_the_step_then_the_run_waits_for_a_person(responder, incident, target):
    runbook = make_runbook(steps=[HEALTH, manual("Look at the dashboard")], services=[target])
    run = RunbookRun.start(runbook, by=responder, incident=incident)
    assert work(steps(run)[0]) == "succeeded"
    first, second = steps(run)
    run.refresh_from_db()
    assert first.state == "succeeded" and first.attempts == 1 and first.result["status"] == "ok"
    assert first.result["figures"]["status_code"] == 200 and first.started_at and first.finished_at
    assert run.state == "waiting_input" and second.waiting_for == "input"
    # One entry per finished step: what it found, then what ran where.
    assert events(incident)[1:] == [
        f"Step 1/2 **API health** succeeded: {first.result['status'].upper()}: {first.result['summary']}"
        " — `http_check GET /health` on **checkout-api**",
    ]


def test_ticking_a_manual_step_with_a_note_and_ticking_it_twice(responder, responder2, incident, target):
    run = RunbookRun.start(
        make_runbook(steps=[manual("Check logs"), manual("Check queue")]), by=responder, incident=incident
    )
    first = steps(run)[0]
    run.complete_step(first.pk, by=responder2, note="No errors since 14:02")
    first.refresh_from_db()
    assert (first.state, first.completed_by, first.note) == ("succeeded", responder2, "No errors since 14:02")
    assert "Step 1/2 **Check logs** done by bob: No errors since 14:02" in events(incident)
    with pytest.raises(Conflict, match="Step 1 is already done by bob"):
        run.complete_step(first.pk, by=responder)
    run.complete_step(steps(run)[1].pk, by=responder, skip=True)
    run.refresh_from_db()
    assert run.state == "succeeded" and run.summary == "1 skipped, 1 succeeded" and run.finished_at
    with pytest.raises(Conflict, match="already succeeded"):
        run.complete_step(first.pk, by=responder)


def test_only_the_current_manual_step_can_be_ticked(responder, target):
    run = RunbookRun.start(make_runbook(steps=[HEALTH, manual("Later")], services=[target]), by=responder)
    automated, later = steps(run)
    with pytest.raises(Conflict, match="Step 1 runs on a worker; it cannot be ticked by hand"):
        run.complete_step(automated.pk, by=responder)
    with pytest.raises(Conflict, match="Step 2 is not the current step; step 1 comes first"):
        run.complete_step(later.pk, by=responder)
    with pytest.raises(DomainError, match="has no step 99999"):
        run.complete_step(99999, by=responder)


def test_a_dangerous_step_needs_approval_by_someone_else(responder, responder2, incident):
    runbook = make_runbook(
        steps=[manual("Restart gunicorn", command="sudo systemctl restart gunicorn", safety="dangerous")]
    )
    run = RunbookRun.start(runbook, by=responder, incident=incident)
    step = steps(run)[0]
    assert run.state == "waiting_approval" and step.waiting_for == "approval"
    assert "Step 1/1 **Restart gunicorn** is dangerous and waits for approval by another responder." in events(incident)
    with pytest.raises(Conflict, match="someone other than alice must approve it first"):
        run.complete_step(step.pk, by=responder)
    with pytest.raises(PermissionDenied, match="You started this run, so you cannot approve its dangerous step 1"):
        run.approve_step(step.pk, by=responder)
    step.refresh_from_db()
    assert step.approved_by is None
    run.approve_step(step.pk, by=responder2, note="Pool is exhausted, go")
    run.refresh_from_db()
    assert run.state == "waiting_input"
    with pytest.raises(Conflict, match="already approved by bob"):
        run.approve_step(step.pk, by=responder2)
    run.complete_step(step.pk, by=responder, note="restarted")
    step.refresh_from_db()
    assert (step.state, step.approved_by, step.completed_by) == ("succeeded", responder2, responder)
    assert "Step 1/1 **Restart gunicorn** approved by bob: Pool is exhausted, go" in events(incident)


def test_an_approved_dangerous_automated_step_is_queued_only_after_approval(
    responder, responder2, target, django_capture_on_commit_callbacks
):
    runbook = make_runbook(steps=[{**HEALTH, "safety": "dangerous"}], services=[target])
    with django_capture_on_commit_callbacks() as queued:
        run = RunbookRun.start(runbook, by=responder)
    assert queued == [] and steps(run)[0].enqueued_at is None
    with django_capture_on_commit_callbacks() as queued:
        run.approve_step(steps(run)[0].pk, by=responder2)
    assert len(queued) == 1
    assert work(steps(run)[0]) == "succeeded"


def test_an_automated_change_step_needs_a_confirmation_which_the_starter_may_give(responder, target):
    runbook = make_runbook(steps=[{**HEALTH, "safety": "change"}], services=[target])
    run = RunbookRun.start(runbook, by=responder)
    assert run.state == "waiting_approval"
    run.approve_step(steps(run)[0].pk, by=responder)
    run.refresh_from_db()
    assert run.state == "running" and steps(run)[0].enqueued_at is not None


def test_rejecting_skips_the_step_and_the_run_goes_on(responder, responder2, incident):
    runbook = make_runbook(steps=[manual("FLUSHALL", safety="dangerous"), manual("Verify")])
    run = RunbookRun.start(runbook, by=responder, incident=incident)
    run.reject_step(steps(run)[0].pk, by=responder2, note="Would drop sessions")
    first, second = steps(run)
    run.refresh_from_db()
    assert first.state == "skipped" and first.result == {"rejected_by": "bob"} and first.note == "Would drop sessions"
    assert run.state == "waiting_input" and second.waiting_for == "input"
    with pytest.raises(Conflict, match="Step 2 is not waiting for approval"):
        run.reject_step(second.pk, by=responder2)


def test_cancel_while_waiting_stops_at_once(responder, responder2, incident):
    run = RunbookRun.start(make_runbook(steps=[manual("a"), manual("b")]), by=responder, incident=incident)
    run.cancel(by=responder2)
    assert run.state == "cancelled" and [s.state for s in steps(run)] == ["cancelled", "cancelled"]
    assert any("cancelled by bob" in e for e in events(incident))
    with pytest.raises(Conflict, match="already cancelled"):
        run.cancel(by=responder)


def test_cancel_is_cooperative_the_running_step_finishes_and_nothing_after_it_starts(
    responder, incident, target, django_capture_on_commit_callbacks
):
    runbook = make_runbook(steps=[HEALTH, HEALTH, manual("c")], services=[target])
    run = RunbookRun.start(runbook, by=responder, incident=incident)
    first = steps(run)[0]
    claimed = StepRun.claim(first.pk, 1, worker="w1")
    run.cancel(by=responder)
    assert run.state == "running" and run.cancel_requested_at is not None
    assert any("Cancel requested by alice: the run stops after Step 1/3" in e for e in events(incident))
    with pytest.raises(Conflict, match="already requested"):
        run.cancel(by=responder)
    from runbooks.execution import execute

    with django_capture_on_commit_callbacks() as queued:
        StepRun.record(first.pk, 1, execute(claimed))
    assert queued == []
    run.refresh_from_db()
    assert run.state == "cancelled" and [s.state for s in steps(run)] == ["succeeded", "cancelled", "cancelled"]


def test_a_redelivered_task_never_runs_a_finished_step_again(responder, incident, target):
    run = RunbookRun.start(make_runbook(steps=[HEALTH], services=[target]), by=responder, incident=incident)
    step = steps(run)[0]
    assert run_step(step.pk, 1) == "succeeded"
    before = len(events(incident))
    assert run_step(step.pk, 1) == "skipped"
    assert run_step(step.pk, 2) == "skipped"
    step.refresh_from_db()
    assert step.attempts == 1 and len(events(incident)) == before


def test_transient_errors_are_retried_with_backoff_then_fail(
    responder, incident, closed_port_url, settings, django_capture_on_commit_callbacks
):
    settings.RUNBOOK_STEP_RETRIES, settings.RUNBOOK_STEP_RETRY_BACKOFF = 2, 2
    service = ServiceFactory(slug="down", base_url=closed_port_url)
    run = RunbookRun.start(
        make_runbook(steps=[HEALTH, manual("next")], services=[service]), by=responder, incident=incident
    )
    step = steps(run)[0]
    with django_capture_on_commit_callbacks() as queued:
        run_step(step.pk, 1)
    step.refresh_from_db()
    assert (step.state, step.attempts, len(queued)) == ("pending", 1, 1)
    assert "Attempt 1 failed: Could not connect to" in step.output and "retrying in 2 s" in step.output
    assert step.enqueued_at > timezone.now() + timedelta(seconds=1)
    run_step(step.pk, 2)
    step.refresh_from_db()
    assert "retrying in 4 s" in step.output
    run_step(step.pk, 3)
    step.refresh_from_db()
    run.refresh_from_db()
    assert (step.state, step.attempts) == ("failed", 3) and "Could not connect" in step.result["error"]
    assert run.state == "waiting_input"  # a failed check does not stop the run: the next step waits


def test_a_missing_environment_variable_fails_the_step_without_retrying(responder, monkeypatch):
    monkeypatch.delenv("ORDERS_REDIS_URL", raising=False)
    service = ServiceFactory(slug="orders", redis_url="env:ORDERS_REDIS_URL")
    run = RunbookRun.start(
        make_runbook(steps=[auto("redis_check", {"check": "ping"})], services=[service]), by=responder
    )
    run_step(steps(run)[0].pk, 1)
    step = steps(run)[0]
    run.refresh_from_db()
    assert step.state == "failed" and step.attempts == 1
    assert step.result["error"] == (
        "Service orders: Redis URL refers to the environment variable ORDERS_REDIS_URL, "
        "which is not set on this worker."
    )
    assert run.state == "failed" and run.summary == "1 failed"


def test_a_step_slower_than_its_timeout_times_out(responder, target):
    slow = auto("http_check", {"path": "/slow?ms=3000"}, title="Slow", timeout=1)
    run = RunbookRun.start(make_runbook(steps=[slow], services=[target]), by=responder)
    run_step(steps(run)[0].pk, 1)
    step = steps(run)[0]
    run.refresh_from_db()
    assert step.state == "timed_out" and "within 1 s" in step.result["error"]
    assert run.state == "timed_out"


def test_secrets_never_reach_output_results_events_logs_or_the_api(
    responder, incident, http_service, monkeypatch, caplog, api_for
):
    port = http_service.rsplit(":", 1)[1]
    monkeypatch.setenv("CHECKOUT_API_URL", f"http://ops:s3cr3t-pa55@127.0.0.1:{port}")
    monkeypatch.setenv("CHECKOUT_TOKEN", "tok-9d8e7f6a5b")
    service = ServiceFactory(slug="checkout", base_url="env:CHECKOUT_API_URL", secret_names="CHECKOUT_TOKEN")
    echo = auto("http_check", {"path": "/echo", "headers": {"X-Token": "env:CHECKOUT_TOKEN"}}, title="Echo")
    down = auto("http_check", {"url": f"http://127.0.0.1:{port}/missing"}, title="Missing")
    caplog.set_level(logging.DEBUG)
    run = RunbookRun.start(make_runbook(steps=[echo, down], services=[service]), by=responder, incident=incident)
    run_step(steps(run)[0].pk, 1)
    run_step(steps(run)[1].pk, 1)
    echoed = steps(run)[0]
    assert echoed.state == "succeeded" and "***" in echoed.output  # the header came back, masked
    body = api_for("viewer").get(f"/api/runs/{run.pk}/").content.decode()
    stored = " ".join([body, *events(incident), *(str(s.result) + s.output for s in steps(run)), caplog.text])
    token = base64.b64encode(b"ops:s3cr3t-pa55").decode()
    for secret in ("s3cr3t-pa55", token, "tok-9d8e7f6a5b"):
        assert secret not in stored


def test_the_reaper_runs_a_read_only_step_once_more_then_fails_it(
    responder, incident, target, django_capture_on_commit_callbacks
):
    run = RunbookRun.start(
        make_runbook(steps=[HEALTH, manual("next")], services=[target]), by=responder, incident=incident
    )
    step = steps(run)[0]
    assert StepRun.claim(step.pk, 1, worker="celery@dead-host") is not None
    assert reap_stuck_steps() == 0  # still within its hard time limit
    with time_machine.travel(timezone.now() + timedelta(minutes=5)), django_capture_on_commit_callbacks() as queued:
        assert reap_stuck_steps() == 1
    step.refresh_from_db()
    # Reading again changes nothing: the check is queued once more as attempt 2.
    assert (step.state, step.attempts, len(queued)) == ("pending", 1, 1)
    assert "No result from worker celery@dead-host" in step.output and "running it once more" in step.output
    assert events(incident)[-1] == (
        "Step 1/2 **API health**: worker celery@dead-host was lost mid-step; the read-only step runs once more."
    )
    from runbooks.execution import Outcome

    # The lost worker coming back late cannot record its attempt any more.
    assert StepRun.record(step.pk, 1, Outcome("succeeded", "late")) is False
    assert StepRun.claim(step.pk, 2, worker="celery@dead-again") is not None
    with time_machine.travel(timezone.now() + timedelta(minutes=10)):
        assert reap_stuck_steps() == 1
    step.refresh_from_db()
    run.refresh_from_db()
    # Only once: lost again, it fails.
    assert step.state == "failed" and "No result from worker celery@dead-again" in step.result["error"]
    assert run.state == "waiting_input"
    assert any("Marked failed by the reaper" in e for e in events(incident))
    assert StepRun.record(step.pk, 2, Outcome("succeeded", "late")) is False


def test_the_reaper_fails_a_change_step_whose_worker_died_at_once(responder, responder2, incident, target):
    change = auto("http_check", {"path": "/health"}, title="Flush", safety="change")
    run = RunbookRun.start(make_runbook(steps=[change], services=[target]), by=responder, incident=incident)
    step = steps(run)[0]
    run.approve_step(step.pk, by=responder2)
    assert StepRun.claim(step.pk, 1, worker="celery@dead-host") is not None
    with time_machine.travel(timezone.now() + timedelta(minutes=5)):
        assert reap_stuck_steps() == 1
    step.refresh_from_db()
    run.refresh_from_db()
    assert step.state == "failed" and step.attempts == 1 and "No result from worker celery@dead-host" in step.output
    assert run.state == "failed" and "running it once more" not in " ".join(events(incident))


def test_the_reaper_times_out_a_step_no_worker_picked_up(responder, target, settings):
    settings.RUNBOOK_STEP_QUEUE_TIMEOUT = 600
    run = RunbookRun.start(make_runbook(steps=[HEALTH], services=[target]), by=responder)
    with time_machine.travel(timezone.now() + timedelta(minutes=11)):
        assert reap_stuck_steps() == 1
    step = steps(run)[0]
    run.refresh_from_db()
    assert step.state == "timed_out" and "No worker picked this step up within 600 s" in step.result["error"]
    assert run.state == "timed_out"


def test_one_active_run_per_runbook_and_incident_unless_forced(responder, incident):
    runbook = make_runbook(steps=[manual("a")])
    first = RunbookRun.start(runbook, by=responder, incident=incident)
    with pytest.raises(Conflict, match=f"Run #{first.pk} of Checkout checks is still waiting for input") as info:
        RunbookRun.start(runbook, by=responder, incident=incident)
    assert info.value.extra == {"run": first.pk}
    forced = RunbookRun.start(runbook, by=responder, incident=incident, force=True)
    assert forced.forced is True
    assert RunbookRun.start(runbook, by=responder).incident is None  # no incident, no limit
    first.cancel(by=responder)
    forced.cancel(by=responder)
    assert RunbookRun.start(runbook, by=responder, incident=incident).forced is False


def test_the_target_must_offer_what_the_steps_need(responder, http_service):
    bare = ServiceFactory(slug="bare")
    runbook = make_runbook(steps=[HEALTH, auto("redis_check", {"check": "ping"})])
    with pytest.raises(DomainError, match="step 1 \\(http_check\\): http_check needs a target service with a base URL"):
        RunbookRun.start(runbook, by=responder)
    with pytest.raises(DomainError, match="step 2 \\(redis_check\\): Service bare has no Redis URL"):
        RunbookRun.start(runbook, by=responder, target=bare)
    assert RunbookRun.objects.count() == 0
    # With a single suitable service, the runbook's own is the default target.
    full = ServiceFactory(slug="full", base_url=http_service, redis_url="redis://127.0.0.1:6379/0")
    runbook.services.set([bare, full])
    assert RunbookRun.start(runbook, by=responder).target == full


def test_step_runs_are_routed_to_the_runbooks_queue_with_late_acks():
    route = celery_app.amqp.router.route({}, "runbooks.run_step")
    assert route["queue"].name == "runbooks"
    assert run_step.acks_late is True and run_step.reject_on_worker_lost is True
    assert celery_app.conf.worker_prefetch_multiplier == 1
    reaper = PeriodicTask.objects.get(name="runbooks-reap-stuck-steps")  # beat's schedule is in the database
    assert reaper.task == "runbooks.reap_stuck_steps" and reaper.enabled


def test_a_broker_that_refuses_the_step_keeps_it_queued_and_says_why_once(
    responder, target, broker_down, django_capture_on_commit_callbacks, settings
):
    runbook = make_runbook(steps=[HEALTH], services=[target])
    incident = IncidentFactory()
    with django_capture_on_commit_callbacks(execute=True):
        run = RunbookRun.start(runbook, by=responder, incident=incident)
    step = steps(run)[0]
    run.refresh_from_db()
    assert step.state == "pending" and step.enqueued_at is not None and step.attempts == 0
    waiting = step.output.removesuffix("\n")
    assert re.fullmatch(
        r"Could not queue the step for a worker \(\w+\); it will be queued again when the broker answers\.", waiting
    )
    assert "s3cret" not in step.output
    assert run.state == "queued"
    assert events(incident)[-1] == f"Step 1/1 **API health**: {waiting}"

    # The sweep publishes it again while the broker is still down: nothing more to say.
    later = timezone.now() + timedelta(seconds=settings.RUNBOOK_STEP_REPUBLISH_AFTER + 5)
    with time_machine.travel(later), django_capture_on_commit_callbacks(execute=True):
        assert StepRun.reap() == 0
    step.refresh_from_db()
    assert step.state == "pending" and step.published_at is not None and step.output == waiting + "\n"
    assert sum(waiting in e for e in events(incident)) == 1

    # No worker took it within the queue timeout: timed out, as any step no worker picked up.
    much_later = timezone.now() + timedelta(seconds=settings.RUNBOOK_STEP_QUEUE_TIMEOUT + 5)
    with time_machine.travel(much_later), django_capture_on_commit_callbacks(execute=True):
        assert StepRun.reap() == 1
    step.refresh_from_db()
    run.refresh_from_db()
    assert step.state == "timed_out" and run.state == "timed_out"
