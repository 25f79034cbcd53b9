from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "incidents"

    def ready(self) -> None:
        from incidents.alerting import receivers  # noqa: F401 - connects the signal receivers
        from incidents.metrics import OPEN_INCIDENTS
        from incidents.notifications import formats  # noqa: F401 - registers the outbound formats
        from opsportal.metrics import register_scrape_collector

        register_scrape_collector(OPEN_INCIDENTS)
