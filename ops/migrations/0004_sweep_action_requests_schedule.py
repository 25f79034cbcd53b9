"""The beat entry of the approvals sweep (ops/approvals.py): undecided dangerous-action requests
expire, and those whose worker died are marked failed. Created only when missing, like 0002."""

from importlib import import_module

from django.db import migrations

seeded = import_module("ops.migrations.0002_periodic_tasks")

NAME = "ops-sweep-action-requests"
TASK = "ops.tasks.sweep_action_requests"
DESCRIPTION = (
    "Expires dangerous ops actions nobody approved within OPS_APPROVAL_TTL_MINUTES and fails those whose "
    "worker died while running them (their outcome is unknown). Disabled: such requests stay pending or "
    "running in the Ops console; an expired one is still refused when someone tries to approve it."
)


def create(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    if PeriodicTask.objects.filter(name=NAME).exists():
        return
    interval = seeded._schedule(apps, seeded.EVERY, (1, "minutes"))
    PeriodicTask.objects.create(name=NAME, task=TASK, description=DESCRIPTION, enabled=True, interval=interval)
    seeded._schedule_changed(apps)


def delete(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()
    seeded._schedule_changed(apps)


class Migration(migrations.Migration):
    dependencies = [("ops", "0003_action_request")]

    operations = [migrations.RunPython(create, delete)]
