"""Prometheus metrics for runbook runs and their steps.

They live in the default registry, so opsportal/metrics.py's /metrics serves them. Steps run in
Celery workers and most runs finish there: give the workers the same PROMETHEUS_MULTIPROC_DIR as
gunicorn so /metrics adds them up. Both are observed in the transaction that writes the final
state, next to it: a run's finish or a step's result is counted once, when it is written.
"""

from prometheus_client import Counter, Histogram

from opsportal.metrics import label

runbook_runs_total = Counter("runbook_runs_total", "Finished runbook runs by result.", ["result"])
runbook_step_duration_seconds = Histogram(
    "runbook_step_duration_seconds",
    "Duration of runbook steps by action.",
    ["action"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)


def record_runbook_run(result: str) -> None:
    """Count a finished run: result is one of the run's final states (succeeded, failed, cancelled, timed_out)."""
    runbook_runs_total.labels(result=label(result)).inc()


def observe_runbook_step(action: str, seconds: float) -> None:
    """Time one automated step: action is its registered action name (http_check, postgres_query, ...)."""
    runbook_step_duration_seconds.labels(action=label(action)).observe(max(seconds, 0.0))
