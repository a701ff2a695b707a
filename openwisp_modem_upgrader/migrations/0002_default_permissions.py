from django.db import migrations

from openwisp_modem_upgrader.migrations import assign_default_permissions


def assign_permissions(apps, schema_editor):
    assign_default_permissions(apps, schema_editor, app_label="modem_upgrader")


class Migration(migrations.Migration):
    dependencies = [
        ("modem_upgrader", "0001_initial"),
        ("openwisp_users", "0004_default_groups"),
    ]

    operations = [
        migrations.RunPython(assign_permissions, reverse_code=migrations.RunPython.noop)
    ]
