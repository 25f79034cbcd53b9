from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "incidents"

    def ready(self) -> None:
        from incidents.alerting import receivers  # noqa: F401 - connects the signal receivers
        from incidents.notifications import formats  # noqa: F401 - registers the outbound formats
