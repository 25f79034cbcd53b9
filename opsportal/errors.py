"""Domain exceptions raised by model verbs; views map them to 4xx responses."""


class DomainError(Exception):
    """A request the rules refuse (HTTP 400)."""


class Conflict(DomainError):
    """A request that clashes with the current state (HTTP 409); `extra` adds fields to the body."""

    def __init__(self, message: str, **extra):
        super().__init__(message)
        self.extra = extra


class InvalidTransition(Conflict):
    pass


class StaleVersion(Conflict):
    pass
