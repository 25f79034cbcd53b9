from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0011_move_alert_vendor_columns_into_source_fields"),
    ]

    operations = [
        migrations.RemoveField(model_name="alert", name="dashboard_url"),
        migrations.RemoveField(model_name="alert", name="panel_url"),
        migrations.RemoveField(model_name="alert", name="silence_url"),
        migrations.RemoveField(model_name="alert", name="values"),
    ]
