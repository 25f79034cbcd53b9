"""The retention sweep: deletes what the portal no longer needs, in batches, and says how much.

- login attempts (django-axes AccessAttempt) whose lockout window has expired, or older than RETENTION_DAYS;
- webhook deliveries that ended (delivered or given up) more than RETENTION_DAYS ago;
- applied alert payloads (AlertDelivery) older than ALERT_DELIVERY_RETENTION_DAYS, which defaults
  to RETENTION_DAYS (the alerts and the timelines built from them stay);
- failed Celery tasks recorded more than RETENTION_DAYS ago (a weekly "clean old jobs" chore, done by the sweep);
- the output of runbook steps of runs that finished more than RETENTION_DAYS ago (the step rows,
  their results and the timeline stay: only the captured text goes);
- the name and e-mail of problem reporters (personal data) on reports received more than
  RETENTION_DAYS ago (the report, its description and its triage stay).
"""

import time
from datetime import timedelta

from axes.models import AccessAttempt
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from incidents.choices import DeliveryState, WebhookDeliveryState
from incidents.models import AlertDelivery, ProblemReport, WebhookDelivery
from ops.models import FailedTask, RetentionRun
from opsportal import metrics
from runbooks.choices import FINISHED_RUN_STATES
from runbooks.models import StepRun

KINDS = ("login_attempts", "webhook_deliveries", "alert_payloads", "failed_tasks", "step_outputs", "reporter_details")


def expired(now=None) -> dict:
    """The querysets the sweep empties, by kind."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.RETENTION_DAYS)
    alerts_cutoff = now - timedelta(days=settings.ALERT_DELIVERY_RETENTION_DAYS)
    return {
        "login_attempts": AccessAttempt.objects.filter(Q(expiration__expires_at__lt=now) | Q(attempt_time__lt=cutoff)),
        "webhook_deliveries": WebhookDelivery.objects.filter(
            state__in=[WebhookDeliveryState.DELIVERED, WebhookDeliveryState.FAILED], created_at__lt=cutoff
        ),
        "alert_payloads": AlertDelivery.objects.filter(state=DeliveryState.PROCESSED, received_at__lt=alerts_cutoff),
        "failed_tasks": FailedTask.objects.filter(failed_at__lt=cutoff),
        "step_outputs": StepRun.objects.filter(run__state__in=FINISHED_RUN_STATES, run__finished_at__lt=cutoff).exclude(
            output=""
        ),
        "reporter_details": ProblemReport.objects.filter(created_at__lt=cutoff).exclude(name="", email=""),
    }


def _sweep(queryset, kind: str, batch: int) -> int:
    done = 0
    while True:
        ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:batch])
        if not ids:
            return done
        with transaction.atomic():
            rows = queryset.model.objects.filter(pk__in=ids)
            if kind == "step_outputs":
                done += rows.update(output="")
            elif kind == "reporter_details":
                done += rows.update(name="", email="")
            else:
                rows.delete()
                done += len(ids)
        if len(ids) < batch:
            return done


def run(*, by=None, dry_run: bool = False) -> RetentionRun:
    started, clock = timezone.now(), time.perf_counter()
    counts = {}
    for kind, queryset in expired(started).items():
        counts[kind] = queryset.count() if dry_run else _sweep(queryset, kind, settings.RETENTION_BATCH_SIZE)
    duration = time.perf_counter() - clock
    if not dry_run:
        for kind, n in counts.items():
            metrics.retention_deleted_total.labels(kind=kind).inc(n)
        metrics.retention_sweep_duration_seconds.observe(duration)
        metrics.retention_runs_total.inc()
    return RetentionRun.objects.create(
        started_at=started,
        duration_ms=round(duration * 1000, 1),
        retention_days=settings.RETENTION_DAYS,
        dry_run=dry_run,
        counts=counts,
        started_by=by,
    )
