# A retry of a mass upgrade's failed devices names its original: both are
# listed side by side and must not read the same

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("sample_modem_upgrader", "0011_multi_modem_batches"),
    ]

    operations = [
        migrations.AddField(
            model_name="modembatchupgradeoperation",
            name="retry_of",
            field=models.ForeignKey(
                blank=True,
                editable=False,
                help_text="the mass upgrade whose failed devices this one retries",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="retries",
                to="sample_modem_upgrader.modembatchupgradeoperation",
                verbose_name="retry of",
            ),
        ),
    ]
