# Mass upgrades of every matching modem of a router: the batch's choice, and
# operations waiting for the upgrade of another modem of their router (not
# counted by the one-active-upgrade-per-device constraint until released)

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("sample_modem_upgrader", "0010_follow_lease_spread_attempts"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="modemupgradeoperation",
            name="sample_modem_upgrader_modemupgradeoperation_one_active_per_device",
        ),
        migrations.AddField(
            model_name="modembatchupgradeoperation",
            name="modems",
            field=models.CharField(
                choices=[
                    ("first", "the first matching modem"),
                    ("every", "every matching modem, one after the other"),
                ],
                default="first",
                help_text="a router with several modems matching the build: flash the first one (by USB path), or every one, one after the other",
                max_length=8,
                verbose_name="modems of each router",
            ),
        ),
        migrations.AddField(
            model_name="modemupgradeoperation",
            name="runs_after",
            field=models.ForeignKey(
                blank=True,
                editable=False,
                help_text="waits for this upgrade of another modem of the router",
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="sample_modem_upgrader.modemupgradeoperation",
            ),
        ),
        migrations.AddConstraint(
            model_name="modemupgradeoperation",
            constraint=models.UniqueConstraint(
                condition=models.Q(
                    ("runs_after", None), ("status__in", ["idle", "in-progress"])
                ),
                fields=("device",),
                name="sample_modem_upgrader_modemupgradeoperation_one_active_per_device",
                violation_error_message="Another modem upgrade is already running on this device.",
            ),
        ),
    ]
