"""The actions automated steps run, by name. Each module holds one family. The diagnostics (http,
postgres, redis, host, prometheus) only read; the remediations (celery_queues, cache, postgres_admin,
portal) change state and say so in their `safety`, which a step can only make stricter.

An action validates its parameters when a runbook is stored (`validate`), says which service
setting it connects to (`needs`), and runs in a Celery worker (`run`), returning ok / warning /
critical with the figures behind it.
"""

from runbooks.actions import cache, celery_queues, host, http, portal, postgres, postgres_admin, prometheus, redis
from runbooks.actions.base import (
    Action,
    ActionError,
    CheckResult,
    ParamsError,
    StepTimeout,
    Target,
    TransientError,
)

ACTIONS: dict[str, Action] = {
    action.name: action
    for module in (http, postgres, redis, host, prometheus, celery_queues, cache, postgres_admin, portal)
    for action in getattr(module, "ACTIONS", [getattr(module, "ACTION", None)])
}

__all__ = [
    "ACTIONS",
    "Action",
    "ActionError",
    "CheckResult",
    "ParamsError",
    "StepTimeout",
    "Target",
    "TransientError",
]
