"""The actions automated steps run, by name: a registry every app adds its families to.

An action validates its parameters when a runbook is stored (`validate`), declares the service
setting it connects to (`setting`) and whether it may act on the portal itself (`portal`), which
the one target rule (`Action.refusal`) checks wherever it runs, and runs in a Celery worker (`run`),
returning ok / warning / critical with the figures behind it. The diagnostics here (http, postgres, redis, host,
prometheus) only read; the remediations belong to the ops app, which registers them from its
`AppConfig.ready()`.
"""

from collections.abc import Iterable

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

ACTIONS: dict[str, Action] = {}


def register(actions: Iterable[Action]) -> None:
    """Adds a family of actions; a name taken twice is a programming error, caught at start-up."""
    for action in actions:
        if ACTIONS.get(action.name, action) is not action:
            raise ValueError(f"action {action.name!r} is registered twice")
        ACTIONS[action.name] = action


register([http.ACTION])
register([postgres.ACTION])
register([redis.ACTION])
register([host.ACTION])
register([prometheus.ACTION])

__all__ = [
    "ACTIONS",
    "Action",
    "ActionError",
    "CheckResult",
    "ParamsError",
    "StepTimeout",
    "Target",
    "TransientError",
    "register",
]
