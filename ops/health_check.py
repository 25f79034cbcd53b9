"""The daily health check, as a runbook run against the portal itself: API health 200
under 100 ms, queue stats, Redis PING, database SELECT 1, disk and memory under 80 %, recent
errors (failed tasks). The run is kept like any other; when it ends with a failed step or a
warning/critical finding, an incident is opened (SEV3 unless OPS_HEALTH_CHECK_SEVERITY says otherwise)."""

import logging
import os

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from incidents.models import Incident, Service
from runbooks.actions.base import PORTAL_SERVICE
from runbooks.choices import FINISHED_RUN_STATES, RunState
from runbooks.models import Runbook, RunbookRun
from runbooks.specs import RunbookSpec, SectionSpec, StepSpec

logger = logging.getLogger(__name__)

SLUG = "portal-daily-health-check"
SERVICE_SLUG = PORTAL_SERVICE  # queue stats and failed tasks given it act on the portal itself
UNDER_80 = {"warn_percent": 80, "critical_percent": 90}


def portal_service() -> Service:
    """The portal as a target: its URL, and its database and Redis through env: references."""
    settings_for = {
        "base_url": settings.PORTAL_BASE_URL,
        "database_url": "env:DATABASE_URL" if os.environ.get("DATABASE_URL") else "",
        "redis_url": "env:REDIS_URL" if os.environ.get("REDIS_URL") else "",
    }
    service, created = Service.objects.get_or_create(
        slug=SERVICE_SLUG, defaults={"name": "Ops Portal", "description": "This portal.", **settings_for}
    )
    if not created and any(getattr(service, k) != v for k, v in settings_for.items()):
        for key, value in settings_for.items():
            setattr(service, key, value)
        service.save()
    return service


def spec(service: Service) -> RunbookSpec:
    steps = [
        StepSpec(
            "API health", kind="automated", action="http_check", params={"path": "/health", "max_latency_ms": 100}
        ),
        StepSpec("Queue stats", kind="automated", action="queue_stats", params={}),
    ]
    if service.redis_url:
        steps.append(StepSpec("Redis PING", kind="automated", action="redis_check", params={"check": "ping"}))
    if service.database_url:
        steps.append(
            StepSpec("Database SELECT 1", kind="automated", action="postgres_query", params={"check": "select_1"})
        )
    steps += [
        StepSpec("Disk under 80 %", kind="automated", action="host_check", params={"check": "disk", **UNDER_80}),
        StepSpec("Memory under 80 %", kind="automated", action="host_check", params={"check": "memory", **UNDER_80}),
        StepSpec("Recent errors (failed tasks)", kind="automated", action="failed_tasks", params={}),
    ]  # fmt: skip
    return RunbookSpec(
        title="Portal daily health check",
        slug=SLUG,
        category="Scheduled maintenance",
        services=[service.slug],
        sections=[SectionSpec("Daily health check", kind="diagnostics", body="Run every morning by the scheduler.")],
        steps=steps,
    )


def start(*, severity: str = "SEV3", by=None) -> RunbookRun | None:
    service = portal_service()
    wanted = spec(service)
    runbook = Runbook.objects.filter(slug=SLUG).first()
    if runbook is None:
        runbook = Runbook.create(wanted, by=None, note="Built in: the daily health check")
    else:
        runbook.revise(wanted, by=None, note="Built in: the daily health check")
    return RunbookRun.start(runbook, by=by, target=service)


def last_run() -> RunbookRun | None:
    """The newest daily health check with its steps (the ops console shows it)."""
    return (
        RunbookRun.objects.filter(runbook__slug=SLUG)
        .select_related("incident", "started_by")
        .prefetch_related("step_runs__step")
        .order_by("-created_at", "-id")
        .first()
    )


def _findings(run: RunbookRun) -> list[str]:
    found = []
    for step_run in run.step_runs.select_related("step").order_by("order"):
        status = step_run.status
        if step_run.state != "succeeded" or status in ("warning", "critical"):
            what = status.upper() if status else step_run.get_state_display()
            found.append(
                f"- {step_run.step.title}: {what} — {(step_run.result or {}).get('summary') or step_run.output[:200]}"
            )
    return found


@receiver(post_save, sender=RunbookRun, dispatch_uid="ops-daily-health-check-verdict")
def open_incident_when_failing(sender, instance: RunbookRun, update_fields=None, **kwargs) -> None:
    if instance.state not in FINISHED_RUN_STATES or instance.state == RunState.CANCELLED or instance.incident_id:
        return
    if update_fields is not None and "state" not in update_fields:
        return
    if not Runbook.objects.filter(pk=instance.runbook_id, slug=SLUG).exists():
        return
    findings = _findings(instance)
    if not findings:
        return

    def declare():
        with transaction.atomic():
            run = RunbookRun.objects.select_for_update().get(pk=instance.pk)
            if run.incident_id:
                return
            incident = Incident.declare(
                by=None,
                title="Daily health check failed",
                summary=f"[Run #{run.pk}]({run.get_absolute_url()}) found:\n" + "\n".join(findings),
                severity=settings.OPS_HEALTH_CHECK_SEVERITY,
                services=[s for s in [run.target] if s],
            )
            RunbookRun.objects.filter(pk=run.pk).update(incident=incident)
        logger.warning("daily health check run %s failed: incident %s opened", instance.pk, incident.pk)

    transaction.on_commit(declare)
