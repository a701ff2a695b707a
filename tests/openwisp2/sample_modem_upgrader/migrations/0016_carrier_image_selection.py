# "Select carrier image" operations (issue 23): the stored carrier image an
# operation makes active, with no firmware transferred

from django.db import migrations, models

import openwisp_modem_upgrader.carriers


class Migration(migrations.Migration):

    dependencies = [
        ("sample_modem_upgrader", "0015_health_verification"),
    ]

    operations = [
        migrations.AddField(
            model_name="modemupgradeoperation",
            name="target_carrier_image",
            field=models.CharField(
                blank=True,
                default="",
                editable=False,
                help_text=(
                    "select carrier image: the stored image made active (no "
                    "firmware transferred); empty: a firmware upgrade"
                ),
                max_length=32,
                validators=[
                    openwisp_modem_upgrader.carriers.CarrierImageNameValidator()
                ],
                verbose_name="carrier image to activate",
            ),
        ),
    ]
