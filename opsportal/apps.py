from django.apps import AppConfig


class OpsPortalConfig(AppConfig):
    name = "opsportal"
    verbose_name = "Ops Portal"

    def ready(self):
        from django.core.signals import got_request_exception

        from opsportal import checks  # noqa: F401 - registers the deploy checks
        from opsportal.metrics import count_request_exception

        got_request_exception.connect(count_request_exception, dispatch_uid="opsportal-exceptions")
