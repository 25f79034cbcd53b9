from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from incidents.alerting.paging import register_approval
        from incidents.notifications.registry import register_event
        from ops import health_check, notifications, signals  # noqa: F401 - signal receivers
        from ops.actions import cache, portal, postgres_admin, queues
        from ops.inbox import waiting_requests
        from opsportal import inbox
        from runbooks.actions import register

        register(queues.ACTIONS)
        register(cache.ACTIONS)
        register(postgres_admin.ACTIONS)
        register(portal.ACTIONS)
        inbox.register(waiting_requests)
        register_event(notifications.APPROVAL_REQUESTED, notifications.APPROVAL_REQUESTED_LABEL)
        register_approval(notifications.PAGE_SOURCE, notifications.awaits_approval)
