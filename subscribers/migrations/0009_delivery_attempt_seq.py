"""Each claim of a delivery gets a number that a status must carry to apply to it.

A plain integer with a database default: on PostgreSQL adding it rewrites nothing and scans
nothing (no CHECK to validate), however many delivery rows exist."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("subscribers", "0008_simulator_role"),
    ]

    operations = [
        migrations.AddField(
            model_name="delivery",
            name="attempt_seq",
            field=models.IntegerField(db_default=0, default=0, verbose_name="attempt number"),
        ),
    ]
