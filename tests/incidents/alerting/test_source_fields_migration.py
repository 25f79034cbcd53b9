"""Migration 0011 moves Grafana's link and value columns into Alert.source_fields, and back."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("incidents", "0010_alert_source_fields_and_registered_kinds")
AFTER = ("incidents", "0012_remove_alert_vendor_columns")


def migrate(target):
    executor = MigrationExecutor(connection)
    executor.migrate([target])
    return executor.loader.project_state([target]).apps


def test_vendor_columns_move_into_source_fields_and_back():
    apps = migrate(BEFORE)
    try:
        Integration, AlertGroup = apps.get_model("incidents", "Integration"), apps.get_model("incidents", "AlertGroup")
        Incident, Alert = apps.get_model("incidents", "Incident"), apps.get_model("incidents", "Alert")
        integration = Integration.objects.create(name="g", kind="grafana", token_hash="h" * 64, token_hint="h")
        group = AlertGroup.objects.create(integration=integration, group_key="k", key_hash="k" * 64)
        incident = Incident.objects.create(title="t", started_at=timezone.now())
        common = {"integration": integration, "group": group, "incident": incident, "status": "firing"}
        grafana = Alert.objects.create(
            **common,
            fingerprint="g1",
            starts_at=timezone.now(),
            generator_url="https://grafana.example/alerting/grafana/abc/view",
            dashboard_url="https://grafana.example/d/sales-stock",
            panel_url="https://grafana.example/d/sales-stock?viewPanel=3",
            silence_url="https://grafana.example/alerting/silence/new",
            values={"B": 0.07},
        )
        plain = Alert.objects.create(**common, fingerprint="a1", starts_at=timezone.now())

        apps = migrate(AFTER)
        Alert = apps.get_model("incidents", "Alert")
        assert Alert.objects.get(pk=grafana.pk).source_fields == {
            "links": {
                "dashboard": "https://grafana.example/d/sales-stock",
                "panel": "https://grafana.example/d/sales-stock?viewPanel=3",
                "silence": "https://grafana.example/alerting/silence/new",
            },
            "values": {"B": 0.07},
        }
        assert Alert.objects.get(pk=plain.pk).source_fields == {}
        assert {f.name for f in Alert._meta.fields}.isdisjoint({"dashboard_url", "panel_url", "silence_url", "values"})

        apps = migrate(BEFORE)
        back = apps.get_model("incidents", "Alert").objects.get(pk=grafana.pk)
        assert (back.dashboard_url, back.panel_url.endswith("viewPanel=3"), back.values) == (
            "https://grafana.example/d/sales-stock",
            True,
            {"B": 0.07},
        )
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes("incidents")[0])
