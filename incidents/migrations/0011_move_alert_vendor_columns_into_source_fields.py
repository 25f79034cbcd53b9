"""Grafana's per-alert dashboard, panel and silence links and its values move from columns of
their own into Alert.source_fields ({"links": {role: url}, "values": {...}}); 0012 drops the
columns. Reversible: going back fills the columns from the JSON again."""

from django.db import migrations

BATCH = 1000
# column → link role in source_fields["links"]
LINK_COLUMNS = {"dashboard_url": "dashboard", "panel_url": "panel", "silence_url": "silence"}


def columns_to_json(apps, schema_editor):
    Alert = apps.get_model("incidents", "Alert")
    changed = []
    rows = Alert.objects.only("pk", "values", *LINK_COLUMNS).order_by("pk").iterator(chunk_size=BATCH)
    for row in rows:
        links = {role: getattr(row, column) for column, role in LINK_COLUMNS.items() if getattr(row, column)}
        fields = {}
        if links:
            fields["links"] = links
        if row.values:
            fields["values"] = row.values
        if fields:
            row.source_fields = fields
            changed.append(row)
        if len(changed) >= BATCH:
            Alert.objects.bulk_update(changed, ["source_fields"])
            changed = []
    Alert.objects.bulk_update(changed, ["source_fields"])


def json_to_columns(apps, schema_editor):
    Alert = apps.get_model("incidents", "Alert")
    changed = []
    rows = Alert.objects.exclude(source_fields={}).only("pk", "source_fields").order_by("pk").iterator(chunk_size=BATCH)
    for row in rows:
        links = row.source_fields.get("links") or {}
        for column, role in LINK_COLUMNS.items():
            setattr(row, column, links.get(role, "")[:2000])
        row.values = row.source_fields.get("values") or {}
        changed.append(row)
        if len(changed) >= BATCH:
            Alert.objects.bulk_update(changed, ["values", *LINK_COLUMNS])
            changed = []
    Alert.objects.bulk_update(changed, ["values", *LINK_COLUMNS])


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0010_alert_source_fields_and_registered_kinds"),
    ]

    operations = [
        migrations.RunPython(columns_to_json, json_to_columns),
    ]
