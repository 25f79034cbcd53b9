from django.db import migrations

# The seeds' response clock for critical alerts (15 min to acknowledge, 1 h to resolve,
# escalate after 30 min if stuck); looser clocks for minor severities. Editable in the admin.
DEFAULTS = {
    "SEV1": (15, 60, 30, 3),
    "SEV2": (15, 60, 30, 3),
    "SEV3": (60, 480, 120, 2),
    "SEV4": (1440, 4320, 0, 1),
}


def create_policies(apps, schema_editor):
    EscalationPolicy = apps.get_model("incidents", "EscalationPolicy")
    for severity, (ack, resolve, escalate, max_level) in DEFAULTS.items():
        EscalationPolicy.objects.get_or_create(
            severity=severity,
            defaults={
                "ack_minutes": ack,
                "resolve_minutes": resolve,
                "escalate_after_minutes": escalate,
                "max_level": max_level,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("incidents", "0005_alert_intake_escalation_notifications")]

    operations = [migrations.RunPython(create_policies, migrations.RunPython.noop)]
