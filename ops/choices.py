"""The states of a dangerous ops action asked for outside a runbook (ops.ActionRequest)."""

from django.db import models


class RequestState(models.TextChoices):
    PENDING = "pending", "Waiting for approval"
    APPROVED = "approved", "Approved, queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Done"
    FAILED = "failed", "Failed"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"


REQUEST_TRANSITIONS: dict[str, set[str]] = {
    RequestState.PENDING: {RequestState.APPROVED, RequestState.REJECTED, RequestState.CANCELLED, RequestState.EXPIRED},
    RequestState.APPROVED: {RequestState.RUNNING, RequestState.FAILED},
    RequestState.RUNNING: {RequestState.SUCCEEDED, RequestState.FAILED},
    RequestState.SUCCEEDED: set(),
    RequestState.FAILED: set(),
    RequestState.REJECTED: set(),
    RequestState.CANCELLED: set(),
    RequestState.EXPIRED: set(),
}
