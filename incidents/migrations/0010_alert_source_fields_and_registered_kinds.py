import incidents.alerting.sources
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0009_approval_requested_event"),
    ]

    operations = [
        migrations.AddField(
            model_name="alert",
            name="source_fields",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text='What only its source sends: {"links": {role: url}, "values": {name: value}}.',
            ),
        ),
        migrations.AlterField(
            model_name="integration",
            name="kind",
            field=models.CharField(
                choices=incidents.alerting.sources.choices,
                help_text="The alert source that posts here.",
                max_length=16,
            ),
        ),
    ]
