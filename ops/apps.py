from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from incidents.notifications.registry import register_event
        from ops import health_check, notifications, signals  # noqa: F401 - signal receivers

        register_event(notifications.APPROVAL_REQUESTED, notifications.APPROVAL_REQUESTED_LABEL)
