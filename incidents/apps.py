from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "incidents"

    def ready(self) -> None:
        from incidents.alerting import receivers  # noqa: F401 - connects the signal receivers
        from incidents.metrics import OPEN_INCIDENTS
        from opsportal.metrics import register_scrape_collector

        register_scrape_collector(OPEN_INCIDENTS)
