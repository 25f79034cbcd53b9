"""Celery queues of a service's broker URL, or of the portal's own workers when there is no target:
stats, pause/resume consumption on every worker, failed tasks (recorded by ops/signals.py) and
their retry or removal, and purging a queue.

Pause cancels the queue's consumer on every worker that answers (`cancel_consumer`); messages
stay on the broker and run after `queue_resume` (`add_consumer`). A worker started while a queue
is paused consumes it again: pause is for minutes of maintenance, not a lasting switch.
"""

import re
import time

from celery import Celery
from kombu.exceptions import OperationalError as KombuOperationalError

from ops.models import FailedTask
from opsportal import broker
from opsportal.errors import Conflict, DomainError, Transient
from runbooks.actions.base import (
    Action,
    ActionError,
    CheckResult,
    ParamsError,
    Target,
    TransientError,
    flag,
    id_list,
    number,
    only,
    table,
)
from runbooks.choices import CheckStatus, Safety

_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
CONTROL_TIMEOUT = 2.0
FAILED_SHOWN = 50


def _portal_app() -> Celery:
    from opsportal.celery import app

    return app


def portal_queues() -> list[str]:
    """The queues the portal's tasks go to: the declared ones (settings.OPSPORTAL_QUEUES), the default
    queue and every routed one."""
    from django.conf import settings

    app = _portal_app()
    routed = [r.get("queue") for r in (settings.CELERY_TASK_ROUTES or {}).values() if isinstance(r, dict)]
    declared = getattr(settings, "OPSPORTAL_QUEUES", ())
    return list(dict.fromkeys([*declared, app.conf.task_default_queue, *filter(None, routed)]))


def _app(target: Target) -> Celery:
    if target.is_portal:
        return _portal_app()
    return broker_app("opsportal-target", target.setting("broker_url"))


def broker_app(name: str, url: str) -> Celery:
    """A Celery app that talks to `url` and nothing else. Celery prefers the CELERY_BROKER_URL
    environment variable (the portal's own broker, when it is set) over `broker=`; the read and
    write URLs win over that variable, so a target's purge never reaches the portal's queues."""
    app = Celery(name, broker=url, set_as_current=False)
    app.conf.update(broker_read_url=url, broker_write_url=url)
    return app


def _queues(params: dict, target: Target) -> list[str]:
    queue = params.get("queue")
    if target.is_portal:
        known = portal_queues()
        if queue is None:
            return known
        if queue not in known:
            raise ParamsError(f"Unknown queue {queue!r}; the portal's queues are: {', '.join(known)}.")
        return [queue]
    if queue is None:
        raise ActionError("Name the queue (the target's queues are not known to the portal).")
    return [queue]


def _validate_queue(params: dict, *, extra: set[str] = frozenset(), required: bool = False) -> dict:
    only(params, {"queue", "dry_run", *extra})
    clean = {"dry_run": flag(params, "dry_run")}
    queue = params.get("queue")
    if queue is None and required:
        raise ParamsError("queue is required.")
    if queue is not None:
        if not isinstance(queue, str) or not _QUEUE_NAME.match(queue):
            raise ParamsError("queue must be a queue name (letters, digits, . _ : -).")
        clean["queue"] = queue
    return clean


def _broker_error(exc: Exception) -> TransientError:
    return TransientError(f"The broker is not reachable: {type(exc).__name__}: {exc}")


def waiting(app: Celery, queue: str) -> int:
    """Messages on the broker for `queue` (a queue never used counts as empty), on Redis, RabbitMQ
    and the filesystem transport alike."""
    with app.connection_for_read() as conn:
        return broker.waiting(conn, queue)


def purge(app: Celery, queue: str) -> int:
    """Deletes the messages waiting on `queue`; a queue the broker never saw holds none (RabbitMQ
    refuses to purge it with NOT_FOUND, Redis answers 0)."""
    with app.connection_for_write() as conn:
        try:
            return conn.default_channel.queue_purge(queue) or 0
        except Exception as exc:
            if broker.never_declared(exc):
                return 0
            raise


def _by_queue(replies: dict | None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for tasks in (replies or {}).values():
        for task in tasks:
            info = task.get("delivery_info") or task.get("request", {}).get("delivery_info") or {}
            queue = info.get("routing_key") or "?"
            counts[queue] = counts.get(queue, 0) + 1
    return counts


def stats(target: Target, queues: list[str], timeout: float) -> dict:
    app = _app(target)
    try:
        inspect = app.control.inspect(timeout=min(CONTROL_TIMEOUT, timeout))
        consuming = inspect.active_queues() or {}
        # Each broadcast waits its whole timeout for workers that may exist: with none, ask nothing more.
        inspect = app.control.inspect(
            timeout=min(CONTROL_TIMEOUT, timeout), destination=list(consuming), limit=len(consuming) or None
        )
        active, reserved, scheduled = (
            (inspect.active(), inspect.reserved(), inspect.scheduled()) if consuming else (None, None, None)
        )
        counts = {q: waiting(app, q) for q in queues}
    except (KombuOperationalError, OSError) as exc:
        raise _broker_error(exc) from None
    failed = {}
    if target.is_portal:
        from django.db.models import Count

        failed = dict(
            FailedTask.objects.waiting()
            .values_list("queue")
            .annotate(n=Count("id"))
            .order_by()
            .values_list("queue", "n")
        )
    per = {k: _by_queue(v) for k, v in {"active": active, "reserved": reserved, "scheduled": scheduled}.items()}
    result = {}
    for queue in queues:
        workers = sorted(w for w, qs in consuming.items() if any(q.get("name") == queue for q in qs))
        result[queue] = {
            "waiting": counts[queue],
            "active": per["active"].get(queue, 0),
            "reserved": per["reserved"].get(queue, 0),
            "scheduled": per["scheduled"].get(queue, 0),
            "failed": failed.get(queue, 0),
            "workers": workers,
            "paused": bool(consuming) and not workers,
        }
    return {"queues": result, "workers": sorted(consuming)}


def _stats_run(params: dict, target: Target, timeout: float) -> CheckResult:
    data = stats(target, _queues(params, target), timeout)
    rows = [
        [q, s["waiting"], s["active"], s["reserved"], s["scheduled"], s["failed"], ", ".join(s["workers"]) or "-"]
        for q, s in data["queues"].items()
    ]
    unserved = [q for q, s in data["queues"].items() if s["waiting"] and not s["workers"]]
    status = CheckStatus.CRITICAL if unserved else CheckStatus.OK if data["workers"] else CheckStatus.WARNING
    summary = (
        f"No worker consumes {', '.join(unserved)}, which has messages waiting"
        if unserved
        else f"{len(data['workers'])} worker(s); "
        + ", ".join(f"{q}: {s['waiting']} waiting, {s['failed']} failed" for q, s in data["queues"].items())
    )
    figures = {f"{q}_{k}": s[k] for q, s in data["queues"].items() for k in ("waiting", "active", "failed")}
    output = table(["queue", "waiting", "active", "reserved", "scheduled", "failed", "workers"], rows)
    return CheckResult(status, summary, figures, output, data)


def _consumers(params: dict, target: Target, timeout: float, *, pause: bool) -> CheckResult:
    queues = _queues(params, target)
    verb = "pause" if pause else "resume"
    if params["dry_run"]:
        return CheckResult(
            CheckStatus.OK,
            f"Dry run: would {verb} consumption of {', '.join(queues)} on every worker.",
            data={"dry_run": True, "queues": queues},
        )
    app = _app(target)
    command = app.control.cancel_consumer if pause else app.control.add_consumer
    answered: dict[str, list[str]] = {}
    try:
        for queue in queues:
            replies = command(queue, reply=True, timeout=min(CONTROL_TIMEOUT, timeout)) or []
            answered[queue] = sorted(worker for reply in replies for worker in reply)
    except (KombuOperationalError, OSError) as exc:
        raise _broker_error(exc) from None
    if not any(answered.values()):
        raise ActionError(f"No worker answered; nothing to {verb} (is a worker running?).")
    done = "paused" if pause else "resumed"
    workers = sorted({w for ws in answered.values() for w in ws})
    summary = f"{', '.join(queues)} {done} on {len(workers)} worker(s): {', '.join(workers)}"
    still = _still_consuming(app, workers, queues, timeout=min(CONTROL_TIMEOUT, timeout)) if pause else {}
    if still:
        summary += "; still consuming: " + ", ".join(f"{w} ({', '.join(qs)})" for w, qs in sorted(still.items()))
    status = CheckStatus.WARNING if still else CheckStatus.OK
    return CheckResult(status, summary, {"workers": len(workers)}, summary, {"queues": answered, "still": still})


def _still_consuming(app: Celery, workers: list[str], queues: list[str], *, timeout: float) -> dict[str, list[str]]:
    """The queues each worker still consumes. A worker answers cancel_consumer before it cancels
    (Celery schedules the cancel on its event loop), so a message published right after the answer
    could still be taken; its answer to active_queues comes after the cancel ran, so once it no
    longer lists the queue, pause is true. Returns what is left after `timeout` seconds (or {})."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            replies = app.control.inspect(destination=workers, timeout=0.5).active_queues() or {}
        except (KombuOperationalError, OSError):
            replies = {}
        still = {
            worker: sorted(q["name"] for q in consumed if q.get("name") in queues)
            for worker, consumed in replies.items()
        }
        still = {w: qs for w, qs in still.items() if qs}
        if (replies and not still) or time.monotonic() >= deadline:
            return still
        time.sleep(0.05)


def _failed_rows(limit: int):
    return list(FailedTask.objects.waiting()[:limit])


def _failed_run(params: dict, target: Target, timeout: float) -> CheckResult:
    rows = _failed_rows(params["limit"])
    data = [
        {"id": r.pk, "task_id": r.task_id, "name": r.name, "queue": r.queue, "reason": r.reason,
         "failed_at": r.failed_at.isoformat()}
        for r in rows
    ]  # fmt: skip
    output = table(
        ["id", "task", "queue", "failed at", "reason"], [[r.pk, r.name, r.queue, r.failed_at, r.reason] for r in rows]
    )
    status = CheckStatus.WARNING if rows else CheckStatus.OK
    summary = f"{len(rows)} failed task(s) waiting to be retried or removed" if rows else "No failed tasks"
    return CheckResult(status, summary, {"failed": len(rows)}, output, {"tasks": data})


def _validate_ids(params: dict) -> dict:
    only(params, {"ids", "all", "dry_run"})
    clean = {"dry_run": flag(params, "dry_run"), "all": flag(params, "all")}
    if clean["all"] == ("ids" in params):
        raise ParamsError("give either ids (a non-empty list) or all: true.")
    if "ids" in params:
        clean["ids"] = id_list(params)
    return clean


def _chosen_ids(params: dict) -> list[int]:
    if params.get("all"):
        return [r.pk for r in _failed_rows(1000)]
    return params["ids"]


def _retry_run(params: dict, target: Target, timeout: float) -> CheckResult:
    ids = _chosen_ids(params)
    if not ids:
        return CheckResult(CheckStatus.OK, "No failed tasks to retry.", data={"ids": []})
    if params["dry_run"]:
        return CheckResult(
            CheckStatus.OK, f"Dry run: would requeue failed tasks {ids}.", data={"dry_run": True, "ids": ids}
        )
    try:
        rows = FailedTask.requeue(ids, by=target.actor)
    except Transient as exc:  # the broker did not answer: audited as failed, 503
        raise TransientError(str(exc)) from None
    except Conflict as exc:
        raise ActionError(str(exc)) from None
    except DomainError as exc:
        raise ParamsError(str(exc)) from None
    summary = f"Requeued {len(rows)} task(s): " + ", ".join(f"{r.name} as {r.requeued_as}" for r in rows)
    return CheckResult(CheckStatus.OK, summary, {"requeued": len(rows)}, summary, {"ids": [r.pk for r in rows]})


def _remove_run(params: dict, target: Target, timeout: float) -> CheckResult:
    ids = _chosen_ids(params)
    if params["dry_run"]:
        return CheckResult(
            CheckStatus.OK, f"Dry run: would remove failed tasks {ids}.", data={"dry_run": True, "ids": ids}
        )
    try:
        rows = FailedTask.remove(ids, by=target.actor)
    except Conflict as exc:
        raise ActionError(str(exc)) from None
    except DomainError as exc:
        raise ParamsError(str(exc)) from None
    summary = f"Removed {len(rows)} failed task(s); they will not be retried."
    return CheckResult(CheckStatus.OK, summary, {"removed": len(rows)}, summary, {"ids": [r.pk for r in rows]})


def _purge_run(params: dict, target: Target, timeout: float) -> CheckResult:
    queue = _queues(params, target)[0]
    app = _app(target)
    try:
        count = waiting(app, queue)
        if params["dry_run"]:
            return CheckResult(
                CheckStatus.OK,
                f"Dry run: would delete the {count} message(s) waiting on {queue}.",
                data={"dry_run": True, "queue": queue, "waiting": count},
            )
        purged = purge(app, queue)
    except (KombuOperationalError, OSError) as exc:
        raise _broker_error(exc) from None
    summary = f"Purged {purged} message(s) from {queue}."
    return CheckResult(CheckStatus.OK, summary, {"purged": purged}, summary, {"queue": queue})


def _validate_stats(params: dict) -> dict:
    clean = _validate_queue(params)
    clean.pop("dry_run")
    return clean


def _validate_failed(params: dict) -> dict:
    only(params, {"limit"})
    return {"limit": int(number(params, "limit", FAILED_SHOWN, minimum=1, maximum=200))}


def _describe(params: dict) -> str:
    extra = params.get("queue") or (f"ids {params['ids']}" if params.get("ids") else "all" if params.get("all") else "")
    return (extra + (" (dry run)" if params.get("dry_run") else "")).strip()


# A service's broker URL, or the portal's own workers; failed tasks are recorded for the portal only.
BROKER = {"setting": "broker_url", "portal": True}
PORTAL = {"portal": True}
ACTIONS = [
    Action("queue_stats", "Queue stats", _stats_run, _validate_stats, _describe, **BROKER),
    Action(
        "queue_pause", "Pause a queue", lambda p, t, s: _consumers(p, t, s, pause=True), _validate_queue,
        _describe, Safety.CHANGE, **BROKER,
    ),
    Action(
        "queue_resume", "Resume a queue", lambda p, t, s: _consumers(p, t, s, pause=False), _validate_queue,
        _describe, Safety.CHANGE, **BROKER,
    ),
    Action("failed_tasks", "Failed tasks", _failed_run, _validate_failed, _describe, **PORTAL),
    Action("retry_failed", "Retry failed tasks", _retry_run, _validate_ids, _describe, Safety.CHANGE, **PORTAL),
    Action(
        "purge_queue", "Purge a queue", _purge_run, lambda p: _validate_queue(p, required=True), _describe,
        Safety.DANGEROUS, **BROKER,
    ),
    Action("remove_task", "Remove failed tasks", _remove_run, _validate_ids, _describe, Safety.DANGEROUS, **PORTAL),
]  # fmt: skip
