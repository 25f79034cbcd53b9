"""The beat schedule, seeded as django-celery-beat rows that admins edit under "Periodic tasks".

These entries used to be CELERY_BEAT_SCHEDULE in settings; they are written out here, frozen,
because a migration must not change when the code does. Only missing rows are created (by
name), so running this again never overwrites an interval an admin changed or re-enables a task
an admin disabled. The crontabs are in the portal's TIME_ZONE as it is when this migration runs
(the beat ran them in that zone before); changing TIME_ZONE later does not move them: edit the
crontab's time zone in the admin.
"""

from django.conf import settings
from django.db import migrations
from django.utils import timezone

EVERY = "every"
CRONTAB = "crontab"

# name -> (task, schedule, description). Intervals as (every, period); crontabs as
# (minute, hour, day_of_week).
SCHEDULE = {
    "reviews-overdue": (
        "incidents.tasks.mark_overdue_reviews",
        (EVERY, (5, "minutes")),
        "Marks post-incident reviews past their due time as overdue, once each: a timeline entry, the "
        "review.overdue webhook and an e-mail to the owner. Disabled: reviews still show as overdue on "
        "/reviews/, but nobody is told.",
    ),
    "run-escalations": (
        "incidents.tasks.run_escalations",
        (EVERY, (30, "seconds")),
        "Escalates unacknowledged incidents one level per period (notifying that level's contacts) and "
        "records missed acknowledge/resolve deadlines. Disabled: nobody beyond L1 is paged and no breach "
        "is recorded; the clocks still count down on the dashboard. Its period is how late an escalation "
        "can be.",
    ),
    "retry-webhook-deliveries": (
        "incidents.tasks.retry_webhook_deliveries",
        (EVERY, (30, "seconds")),
        "Sends again the outgoing webhook deliveries whose next retry is due (backoff from 30 s to hourly, "
        "for 24 h). Disabled: a failed delivery is never retried by itself; it can still be sent again from "
        "the admin, the Webhooks page or the API.",
    ),
    "requeue-alert-deliveries": (
        "incidents.tasks.requeue_alert_deliveries",
        (EVERY, (2, "minutes")),
        "Queues again the stored Alertmanager/Grafana payloads still pending 5 minutes after they were "
        "queued (the queue message was lost, e.g. in a broker restart). Disabled: such payloads stay pending "
        "and their alerts never reach an incident.",
    ),
    "runbooks-reap-stuck-steps": (
        "runbooks.reap_stuck_steps",
        (EVERY, (1, "minutes")),
        "Fails runbook steps whose worker died (no result past the hard time limit) and times out those no "
        "worker took within RUNBOOK_STEP_QUEUE_TIMEOUT, so their runs finish. Disabled: such steps and their "
        "runs stay running.",
    ),
    "ops-retention-run": (
        "ops.tasks.retention_run",
        (EVERY, (1, "hours")),
        "The retention sweep (RETENTION_DAYS, ALERT_DELIVERY_RETENTION_DAYS): expired login attempts, ended "
        "webhook deliveries, applied alert payloads, old failed tasks and old runbook step output; each run "
        "is kept under Retention runs and audited. Disabled: those tables only grow; run it from the Ops "
        "console or POST /api/ops/retention/run.",
    ),
    "ops-daily-health-check": (
        "ops.tasks.daily_health_check",
        (CRONTAB, ("0", "6", "*")),
        "Runs the runbook 'Portal daily health check' against the service ops-portal (health endpoint, "
        "queues, Redis, database, disk, memory, failed tasks); a failed step or finding opens an incident "
        "(OPS_HEALTH_CHECK_SEVERITY). Disabled: no daily check; the runbook can still be started by hand.",
    ),
    "ops-weekly-maintenance": (
        "ops.tasks.weekly_maintenance",
        (CRONTAB, ("30", "3", "sun")),
        "The weekly window: ANALYZE on the database, then the retention sweep, each audited. Disabled: "
        "the planner's statistics are left to autovacuum alone (the hourly sweep still runs).",
    ),
}


def _schedule(apps, kind: str, values: tuple):
    """The existing schedule row with these values, else a new one (the package's own lookup:
    several tasks share one row, and nothing stops duplicates, so take the first)."""
    if kind == EVERY:
        every, period = values
        model, fields = apps.get_model("django_celery_beat", "IntervalSchedule"), {"every": every, "period": period}
    else:
        minute, hour, day_of_week = values
        model = apps.get_model("django_celery_beat", "CrontabSchedule")
        fields = {
            "minute": minute,
            "hour": hour,
            "day_of_week": day_of_week,
            "day_of_month": "*",
            "month_of_year": "*",
            "timezone": settings.TIME_ZONE,
        }
    return model.objects.filter(**fields).first() or model.objects.create(**fields)


def _schedule_changed(apps) -> None:
    """Tell a beat that is already running to re-read its schedule (the package does this with
    signals, which do not reach the historical models of a migration)."""
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def create_periodic_tasks(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    missing = set(SCHEDULE) - set(PeriodicTask.objects.filter(name__in=SCHEDULE).values_list("name", flat=True))
    for name in sorted(missing):
        task, (kind, values), description = SCHEDULE[name]
        field = "interval" if kind == EVERY else "crontab"
        PeriodicTask.objects.create(
            name=name, task=task, description=description, enabled=True, **{field: _schedule(apps, kind, values)}
        )
    if missing:
        _schedule_changed(apps)


def delete_periodic_tasks(apps, schema_editor):
    """Only these names go; their interval and crontab rows stay, as other tasks may use them."""
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=SCHEDULE).delete()
    _schedule_changed(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("ops", "0001_ops_audit_failed_tasks_maintenance_retention"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_periodic_tasks, delete_periodic_tasks)]
