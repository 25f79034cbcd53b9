"""The one error vocabulary: domain exceptions raised by model verbs and actions, and the one
mapping from an exception to an HTTP status and a `{"detail": ..., **extra}` body (`to_http`).

The API's exception handler, the ops API, the ops console and the portal pages all answer with
`to_http`; none of them picks a status of its own for a domain error.

    DomainError     400  the rules refuse the request as it is
    BadParameters   400  a parameter is not acceptable (a step's, an action's)
    TargetMissing   400  the target service lacks the setting the action needs
    NotAllowed      403  a rule refuses *this user* (approving one's own request, a missing role)
    Conflict        409  the request clashes with the current state (already decided, stale
                         version, a target that cannot do it now); retrying the same will not help
    Transient       503  something the action needs is unreachable for now; try again later
    Timeout         504  the action did not finish in time

The decision on refusals: a rule that refuses this user is 403, whoever else might be allowed;
a clash with the state of the thing is 409, whoever asks. Django's `PermissionDenied` (raised by
role checks and by verbs that refuse a user) is therefore 403 everywhere, the same as NotAllowed,
which is a PermissionDenied too.

`extra` keyword arguments become fields of the error body next to `detail`. Subclasses elsewhere
inherit their status from these classes and never set `status_code` themselves.
"""

from django.core.exceptions import PermissionDenied


class DomainError(Exception):
    """A request the rules refuse (HTTP 400)."""

    status_code = 400

    def __init__(self, message: str, **extra):
        super().__init__(message)
        self.extra = extra


class BadParameters(DomainError):
    """A parameter is not acceptable (HTTP 400)."""


class TargetMissing(BadParameters):
    """The action's target service lacks the setting it needs (HTTP 400)."""


class NotAllowed(DomainError, PermissionDenied):
    """A rule refuses this user (HTTP 403)."""

    status_code = 403


class Conflict(DomainError):
    """A request that clashes with the current state (HTTP 409)."""

    status_code = 409


class InvalidTransition(Conflict):
    pass


class StaleVersion(Conflict):
    pass


class Transient(DomainError):
    """Something the request needs is unreachable for now (HTTP 503)."""

    status_code = 503


class Timeout(DomainError):
    """The work did not finish in time (HTTP 504)."""

    status_code = 504


# What views catch to answer with `to_http`: every domain error, and Django's refusal of a user.
REFUSALS = (DomainError, PermissionDenied)


def to_http(exc: Exception) -> tuple[int, dict]:
    """The HTTP status and the `{"detail": ..., **extra}` body for a domain error or a PermissionDenied."""
    if isinstance(exc, DomainError):
        return exc.status_code, {"detail": str(exc), **exc.extra}
    if isinstance(exc, PermissionDenied):
        return 403, {"detail": str(exc) or "You are not allowed to do this."}
    raise TypeError(f"{type(exc).__name__} is not a domain error") from exc


def status_of(exc: Exception) -> int:
    """The HTTP status of a domain error or a PermissionDenied (see `to_http`)."""
    return to_http(exc)[0]
