"""The beat schedule lives in the database (django-celery-beat), seeded by a migration and edited
in the admin under "Periodic tasks"; what an admin changes is what beat runs, also after a restart."""

import importlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import Permission
from django.utils.html import escape
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from opsportal.celery import app
from tests.factories import UserFactory
from tests.runbooks.conftest import purge_runbook_queue, subprocess_database_url, wait_for

pytestmark = pytest.mark.django_db

seed = importlib.import_module("ops.migrations.0002_periodic_tasks")

# What settings.CELERY_BEAT_SCHEDULE held before the schedule moved to the database.
INTERVALS = {
    "reviews-overdue": ("incidents.tasks.mark_overdue_reviews", timedelta(minutes=5)),
    "run-escalations": ("incidents.tasks.run_escalations", timedelta(seconds=30)),
    "retry-webhook-deliveries": ("incidents.tasks.retry_webhook_deliveries", timedelta(seconds=30)),
    "requeue-alert-deliveries": ("incidents.tasks.requeue_alert_deliveries", timedelta(minutes=2)),
    "runbooks-reap-stuck-steps": ("runbooks.reap_stuck_steps", timedelta(minutes=1)),
    "ops-retention-run": ("ops.tasks.retention_run", timedelta(hours=1)),
    # Added with the approvals (ops/migrations/0004).
    "ops-sweep-action-requests": ("ops.tasks.sweep_action_requests", timedelta(minutes=1)),
}
# (minute, hour, day of month, month, day of week), in the portal's TIME_ZONE.
CRONTABS = {
    "ops-daily-health-check": ("ops.tasks.daily_health_check", ("0", "6", "*", "*", "*")),
    "ops-weekly-maintenance": ("ops.tasks.weekly_maintenance", ("30", "3", "*", "*", "sun")),
}
CHANGELIST = "/admin/django_celery_beat/periodictask/"
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>")


def crontab_of(task: PeriodicTask) -> tuple:
    c = task.crontab
    return (c.minute, c.hour, c.day_of_month, c.month_of_year, c.day_of_week)


def beat_start() -> dict:
    """What `celery beat` holds after it starts: the scheduler's entries by name."""
    return DatabaseScheduler(app=app).schedule


def change_form(task: PeriodicTask, **changes) -> dict:
    """The admin's change form for `task`, as the browser posts it (booleans only when ticked)."""
    data = {
        "name": task.name,
        "regtask": task.task,
        "task": task.task,
        "description": task.description,
        "interval": task.interval_id or "",
        "crontab": task.crontab_id or "",
        "solar": "",
        "clocked": "",
        "start_time_0": "",
        "start_time_1": "",
        "args": task.args,
        "kwargs": task.kwargs,
        "expires_0": "",
        "expires_1": "",
        "expire_seconds": "",
        "queue": "",
        "exchange": "",
        "routing_key": "",
        "priority": "",
        "headers": task.headers or "{}",
    }
    if task.enabled:
        data["enabled"] = "on"
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def test_the_migration_seeds_the_schedule_settings_used_to_hold():
    tasks = {task.name: task for task in PeriodicTask.objects.select_related("interval", "crontab")}
    assert set(tasks) == set(INTERVALS) | set(CRONTABS)
    for name, (task_name, every) in INTERVALS.items():
        task = tasks[name]
        assert (task.task, task.enabled, task.interval.schedule.run_every) == (task_name, True, every), name
    for name, (task_name, fields) in CRONTABS.items():
        task = tasks[name]
        assert (task.task, task.enabled, crontab_of(task)) == (task_name, True, fields), name
        assert str(task.crontab.timezone) == settings.TIME_ZONE
    assert all("Disabled:" in task.description for task in tasks.values())  # the admin reads what it stops


@pytest.mark.django_db(transaction=True)
def test_every_scheduled_task_is_one_the_workers_know():
    beat_start()  # beat adds what it needs on its own (nothing: there is no result backend to clean)
    app.loader.import_default_modules()
    names = set(PeriodicTask.objects.values_list("task", flat=True))
    assert names == {task for task, _ in [*INTERVALS.values(), *CRONTABS.values()]}
    assert names <= set(app.tasks)
    assert not PeriodicTask.objects.filter(name="celery.backend_cleanup").exists()


def test_crontabs_are_in_the_portal_time_zone(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    PeriodicTask.objects.filter(name__in=CRONTABS).delete()
    seed.create_periodic_tasks(apps, None)
    for name in CRONTABS:
        assert str(PeriodicTask.objects.get(name=name).crontab.timezone) == "Europe/Berlin"


def test_seeding_again_restores_a_deleted_entry_and_leaves_edited_ones_alone():
    hourly = PeriodicTask.objects.get(name="ops-retention-run")
    hourly.interval = IntervalSchedule.objects.create(every=6, period=IntervalSchedule.HOURS)
    hourly.enabled = False
    hourly.save()
    PeriodicTask.objects.filter(name="run-escalations").delete()
    seed.create_periodic_tasks(apps, None)
    hourly.refresh_from_db()
    assert (hourly.enabled, hourly.interval.schedule.run_every) == (False, timedelta(hours=6))
    assert PeriodicTask.objects.get(name="run-escalations").interval.schedule.run_every == timedelta(seconds=30)


def test_unapplying_the_migration_removes_only_its_entries():
    PeriodicTask.objects.create(
        name="nightly-report", task="ops.tasks.retention_run", crontab=CrontabSchedule.objects.create(hour="1")
    )
    seed.delete_periodic_tasks(apps, None)
    assert sorted(PeriodicTask.objects.values_list("name", flat=True)) == [
        "nightly-report",
        "ops-sweep-action-requests",
    ]


# --- The admin ----------------------------------------------------------------------------------


def test_admins_see_the_schedule_in_the_admin(client, admin_user):
    client.force_login(admin_user)
    listing = client.get(CHANGELIST)
    assert listing.status_code == 200
    body = listing.content.decode()
    assert all(name in body for name in [*INTERVALS, *CRONTABS])
    assert "won't be dispatched" not in body  # the package's warning about a wrong scheduler setting
    pages = {}
    for name in ("ops-daily-health-check", "run-escalations"):
        task = PeriodicTask.objects.get(name=name)
        page = client.get(f"{CHANGELIST}{task.pk}/change/")
        assert page.status_code == 200
        pages[name] = page.content.decode()
        assert escape(task.description) in pages[name]
        assert not INLINE_SCRIPT.findall(pages[name])  # the CSP allows scripts from files only
    assert "At 06:00 AM" in pages["ops-daily-health-check"]  # the crontab in words
    assert "Periodic tasks" in client.get("/admin/").content.decode()


@pytest.mark.parametrize("role", ["anonymous", "viewer", "responder"])
def test_the_schedule_is_not_for_other_roles(client, user_for, role):
    user = user_for(role)
    if user:
        client.force_login(user)
    task = PeriodicTask.objects.get(name="run-escalations")
    for path in (CHANGELIST, f"{CHANGELIST}{task.pk}/change/"):
        response = client.get(path)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    response = client.post(f"{CHANGELIST}{task.pk}/change/", change_form(task, enabled=None))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert PeriodicTask.objects.get(pk=task.pk).enabled


def test_staff_who_are_not_admins_are_refused_even_with_the_permissions(client):
    staff = UserFactory(username="carol", role="responder", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label="django_celery_beat"))
    client.force_login(staff)
    task = PeriodicTask.objects.get(name="run-escalations")
    assert client.get(CHANGELIST).status_code == 403
    assert client.post(f"{CHANGELIST}{task.pk}/change/", change_form(task, enabled=None)).status_code == 403
    assert "Periodic tasks" not in client.get("/admin/").content.decode()
    assert PeriodicTask.objects.get(pk=task.pk).enabled


# --- What an admin changes is what beat runs ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_interval_changed_in_the_admin_survives_a_beat_restart(client, admin_user):
    task = PeriodicTask.objects.get(name="ops-retention-run")
    six_hours = IntervalSchedule.objects.create(every=6, period=IntervalSchedule.HOURS)
    client.force_login(admin_user)
    response = client.post(f"{CHANGELIST}{task.pk}/change/", change_form(task, interval=six_hours.pk))
    assert response.status_code == 302, response.content.decode()[:2000]

    schedule = beat_start()
    assert schedule["ops-retention-run"].schedule.run_every == timedelta(hours=6)
    assert PeriodicTask.objects.get(name="ops-retention-run").interval == six_hours


@pytest.mark.django_db(transaction=True)
def test_a_task_disabled_in_the_admin_stays_disabled_after_a_beat_restart(client, admin_user):
    client.force_login(admin_user)
    task = PeriodicTask.objects.get(name="requeue-alert-deliveries")
    other = PeriodicTask.objects.get(name="reviews-overdue")
    response = client.post(CHANGELIST, {"action": "disable_tasks", "_selected_action": [task.pk]}, follow=True)
    assert "1 task was successfully disabled" in response.content.decode()
    response = client.post(f"{CHANGELIST}{other.pk}/change/", change_form(other, enabled=None))
    assert response.status_code == 302

    schedule = beat_start()
    assert "requeue-alert-deliveries" not in schedule and "reviews-overdue" not in schedule
    assert set(INTERVALS) - {"requeue-alert-deliveries", "reviews-overdue"} <= set(schedule)
    assert not PeriodicTask.objects.filter(name__in=["requeue-alert-deliveries", "reviews-overdue"], enabled=True)


# --- A real beat process ---------------------------------------------------------------------------


def sent_by_beat(name: str) -> int:
    """Takes the messages off the default queue and counts those beat sent for `name`."""
    count = 0
    with app.connection_for_read() as conn:
        queue = conn.SimpleQueue(app.conf.task_default_queue)
        try:
            while True:
                message = queue.get(block=True, timeout=0.5)
                message.ack()
                count += message.headers.get("periodic_task_name") == name
        except queue.Empty:
            return count
        finally:
            queue.close()


def stopped(process: subprocess.Popen, patience: float = 90) -> int | None:
    """The exit code of a beat told to stop. It normally stops within a second; on a machine shared
    by several suites it has taken over 30 s, so it gets longer, and if it is still running then,
    celery's SIGUSR1 handler logs every thread's stack into `process.log` for the failure message."""
    try:
        return process.wait(patience)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGUSR1)
        time.sleep(2)
        return None


@pytest.fixture
def start_beat(transactional_db):
    """Starts `celery beat` as the Procfile does (the scheduler comes from settings), on the test
    database and broker; stopped at the end of the test."""
    processes = []

    def start() -> subprocess.Popen:
        env = {
            **os.environ,
            "DATABASE_URL": subprocess_database_url(),
            "OPSPORTAL_VAR_DIR": str(Path(settings.VAR_DIR).resolve()),
            "SECRET_KEY": settings.SECRET_KEY,
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "opsportal", "beat", "--loglevel", "INFO"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        process.log = []
        threading.Thread(target=lambda: process.log.extend(process.stdout), daemon=True).start()
        processes.append(process)
        return process

    purge_runbook_queue(app.conf.task_default_queue)
    yield start
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
    purge_runbook_queue(app.conf.task_default_queue)


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_beat_sends_what_the_database_says(start_beat):
    PeriodicTask.objects.exclude(name="ops-retention-run").update(enabled=False)
    task = PeriodicTask.objects.get(name="ops-retention-run")
    task.interval = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    task.save()
    beat = start_beat()
    sent = 0

    def sent_twice() -> bool:
        nonlocal sent
        if beat.poll() is not None:
            pytest.fail("beat stopped:\n" + "".join(beat.log[-30:]))
        sent += sent_by_beat("ops-retention-run")
        return sent >= 2

    wait_for(sent_twice, timeout=60, message="beat to send ops-retention-run twice")
    os.killpg(beat.pid, signal.SIGTERM)  # beat writes its bookkeeping back as it stops
    assert stopped(beat) == 0, "".join(beat.log[-60:])
    task.refresh_from_db()
    assert task.total_run_count >= 2 and task.last_run_at is not None  # the admin's "Last run" column
    assert sent_by_beat("run-escalations") == 0  # disabled: never sent
