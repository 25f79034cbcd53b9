"""Which setting of a service an ops action uses when the ops API or console points it at a target
service instead of the portal itself. Explicit on purpose: an action given a service that lacks
the setting would otherwise fall back to the portal's own queues, cache or database."""

from runbooks.actions import ParamsError
from runbooks.actions.base import SETTING_LABELS

SERVICE_SETTING = {
    **dict.fromkeys(["queue_stats", "queue_pause", "queue_resume", "purge_queue"], "broker_url"),
    **dict.fromkeys(["cache_invalidate", "cache_flush"], "redis_url"),
    **dict.fromkeys(["analyze", "vacuum_analyze", "reindex", "terminate_long_queries"], "database_url"),
}


def check_target(action: str, service) -> None:
    """ParamsError unless `action` can act on `service` (None: the portal, always fine)."""
    if service is None:
        return
    setting = SERVICE_SETTING.get(action)
    if setting is None:
        raise ParamsError(f"{action} acts on the portal itself; leave service out.")
    if not getattr(service, setting):
        raise ParamsError(
            f"Service {service.slug} has no {SETTING_LABELS[setting]}: set one on the service (admin → Services) "
            f"to run {action} against it."
        )
