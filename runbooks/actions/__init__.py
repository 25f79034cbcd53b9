"""The actions automated steps run, by name. Each module holds one family; all of them only read.

An action validates its parameters when a runbook is stored (`validate`), says which service
setting it connects to (`needs`), and runs in a Celery worker (`run`), returning ok / warning /
critical with the figures behind it.
"""

from runbooks.actions import host, http, postgres, prometheus, redis
from runbooks.actions.base import (
    Action,
    ActionError,
    CheckResult,
    ParamsError,
    StepTimeout,
    Target,
    TransientError,
)

ACTIONS: dict[str, Action] = {module.ACTION.name: module.ACTION for module in (http, postgres, redis, host, prometheus)}

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
