"""What every action shares: its result, its errors, the target it runs against, small helpers."""

from collections.abc import Callable
from dataclasses import dataclass, field

from opsportal.connections import ConnectionSettingError, Masker, resolve
from opsportal.errors import BadParameters, Conflict, TargetMissing, Timeout, Transient
from runbooks.choices import CheckStatus, Safety

SETTING_LABELS = {
    "base_url": "base URL",
    "database_url": "database URL",
    "redis_url": "Redis URL",
    "broker_url": "broker URL",
    "prometheus_url": "Prometheus URL",
}
# The service that stands for the portal itself: an action that may act on the portal does so
# when given it, whatever URLs it holds (ops' daily health check creates it).
PORTAL_SERVICE = "ops-portal"


# The platform's error vocabulary (opsportal/errors.py) gives each of these its HTTP status.
class ParamsError(BadParameters, ValueError):
    """The parameters of a step are not acceptable (raised when a runbook is stored): 400."""


class TargetRefused(ParamsError, TargetMissing):
    """The target service cannot serve the action (it lacks the setting, or it is not the portal)."""


class ActionError(Conflict):
    """The step cannot succeed as configured or as the target is now; retrying will not help: 409."""


class TransientError(Transient, ActionError):
    """A connection problem that may pass: the step is retried with backoff; 503."""


class StepTimeout(Timeout, ActionError):
    """The action did not finish within the step's time limit: 504."""


@dataclass
class CheckResult:
    status: str
    summary: str
    figures: dict = field(default_factory=dict)
    output: str = ""
    data: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"status": self.status, "summary": self.summary, "figures": self.figures, **self.data}


@dataclass(frozen=True)
class Action:
    name: str
    label: str
    run: Callable[[dict, "Target", float], CheckResult]
    validate: Callable[[dict], dict]
    describe: Callable[[dict], str]
    safety: str = Safety.READ_ONLY
    # Stricter than `safety` for some parameters: called with the target when it is known (the
    # effect can be measured: how many keys a cache pattern deletes), with None when a runbook is stored.
    safety_for: Callable[[dict, "Target | None"], str] | None = None
    # The service setting it connects to (a key of SETTING_LABELS); None: it needs no service.
    setting: str | None = None
    # `setting` for some parameters only (an http_check given a full URL needs no base URL).
    setting_for: Callable[[dict], str | None] | None = None
    # With no target service it acts on the portal itself (its broker, cache, database or data).
    portal: bool = False
    # Why a service that has the setting still cannot serve these params (an http_check's URL on a
    # host the service does not list), or None; the worker checks again when the step runs.
    target_problem: Callable[[dict, object], str | None] | None = None

    def safety_of(self, params: dict, target: "Target | None" = None) -> str:
        """How dangerous running it with `params` is; against `target`, judged by its effect there."""
        return self.safety_for(params, target) if self.safety_for else self.safety

    def needs(self, params: dict) -> str | None:
        """The service setting a step with these params connects to (None: it needs no service)."""
        return self.setting_for(params) if self.setting_for else self.setting

    def refusal(self, params: dict, service) -> str | None:
        """Why this action cannot run against `service` (None: no target service), or None when it can.

        The one target rule of runs, steps, the ops API, the console and approvals: a service
        lacking the setting is refused, never replaced by the portal's own broker, cache or database.
        Only no service at all (or the service that stands for the portal) means the portal itself."""
        if self.portal and is_portal(service):
            return None
        setting = self.needs(params)
        if setting is None:
            if self.portal and service is not None:  # the portal's own data only
                return f"{self.name} acts on the portal itself, not on service {service.slug}; leave the service out."
            return None
        label = SETTING_LABELS[setting]
        if service is None:
            return f"{self.name} needs a target service with a {label}; choose a target service."
        if not getattr(service, setting):
            return (
                f"Service {service.slug} has no {label}: set one on the service (admin → Services) "
                f"to run {self.name} against it."
            )
        return self.target_problem(params, service) if self.target_problem else None

    def check_target(self, params: dict, service) -> None:
        """TargetRefused (a ParamsError: nothing ran) unless the one target rule lets this action run
        against `service`."""
        problem = self.refusal(params, service)
        if problem:
            raise TargetRefused(problem)


def is_portal(service) -> bool:
    """No target service, or the service standing for the portal (ops' daily health check runs against it)."""
    return service is None or service.slug == PORTAL_SERVICE


class Target:
    """The service a step acts on; settings are resolved (env: references included) only when asked."""

    def __init__(self, service, masker: Masker, *, actor=None):
        self.service = service
        self.masker = masker
        self.actor = actor  # who the action runs for (remediations record it on what they change)

    @property
    def name(self) -> str:
        return self.service.slug if self.service is not None else "no target"

    @property
    def is_portal(self) -> bool:
        """An action that may act on the portal acts on the portal's own broker, cache or database."""
        return is_portal(self.service)

    def setting(self, name: str) -> str:
        label = SETTING_LABELS[name]
        if self.service is None:
            raise ActionError(f"This step needs a target service with a {label}; start the run with a target.")
        try:
            return resolve(
                getattr(self.service, name), masker=self.masker, label=f"Service {self.service.slug}: {label}"
            )
        except ConnectionSettingError as exc:
            raise ActionError(str(exc)) from None


def threshold_status(value: float, warn: float | None, critical: float | None, *, higher_is_worse: bool = True) -> str:
    def beyond(limit):
        return limit is not None and (value >= limit if higher_is_worse else value < limit)

    if beyond(critical):
        return CheckStatus.CRITICAL
    if beyond(warn):
        return CheckStatus.WARNING
    return CheckStatus.OK


def worst(*statuses: str) -> str:
    order = [CheckStatus.OK, CheckStatus.WARNING, CheckStatus.CRITICAL]
    return max(statuses, key=order.index, default=CheckStatus.OK)


def number(params: dict, key: str, default: float | None, *, minimum: float = 0, maximum: float | None = None):
    value = params.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParamsError(f"{key} must be a number.")
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ParamsError(f"{key} must be {bounds}.")
    return value


def flag(params: dict, key: str) -> bool:
    value = params.get(key, False)
    if not isinstance(value, bool):
        raise ParamsError(f"{key} must be true or false.")
    return value


def id_list(params: dict, key: str = "ids", *, limit: int = 1000) -> list[int]:
    value = params.get(key)
    if not isinstance(value, list) or not value:
        raise ParamsError(f"{key} must be a non-empty list of ids.")
    if len(value) > limit or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise ParamsError(f"{key} must list up to {limit} positive integer ids.")
    return list(dict.fromkeys(value))


def only(params: dict, allowed: set[str]) -> None:
    unknown = set(params) - allowed
    if unknown:
        raise ParamsError(f"unknown parameters: {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(allowed))}.")


def table(columns: list[str], rows: list[list], *, limit: int = 200) -> str:
    """Rows as aligned text, the way psql prints them."""
    shown = [[("" if v is None else str(v)).replace("\n", " ")[:200] for v in row] for row in rows[:limit]]
    widths = [max([len(c), *(len(r[i]) for r in shown)]) for i, c in enumerate(columns)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in shown]
    shown_note = f", first {limit} shown" if len(rows) > limit else ""
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''}{shown_note})")
    return "\n".join(lines)
