"""Domain exceptions raised by model verbs; views map them to 4xx responses.

`extra` keyword arguments become fields of the API error body next to `detail`.
"""


class DomainError(Exception):
    """A request the rules refuse (HTTP 400)."""

    def __init__(self, message: str, **extra):
        super().__init__(message)
        self.extra = extra


class Conflict(DomainError):
    """A request that clashes with the current state (HTTP 409)."""


class InvalidTransition(Conflict):
    pass


class StaleVersion(Conflict):
    pass
