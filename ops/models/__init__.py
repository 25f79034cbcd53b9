"""What the ops actions leave behind: an audit trail, failed Celery tasks to requeue, the
maintenance switch, the retention runs and the dangerous actions asked for outside runbooks."""

from ops.models.audit import AuditRecord
from ops.models.failed_task import FailedTask, FailedTaskQuerySet
from ops.models.maintenance import MaintenanceSwitch
from ops.models.request import ActionRequest, ActionRequestQuerySet, username_of
from ops.models.retention import RetentionRun

__all__ = [
    "ActionRequest",
    "ActionRequestQuerySet",
    "AuditRecord",
    "FailedTask",
    "FailedTaskQuerySet",
    "MaintenanceSwitch",
    "RetentionRun",
    "username_of",
]
