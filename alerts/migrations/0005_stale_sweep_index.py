"""The stale sweep's index takes a condition a lookup by fingerprint cannot
prove (alerts.models.Alert.Meta). Built concurrently under a new name before
the old one goes, so deliveries are neither blocked nor left without it while
a large table is read."""

from django.contrib.postgres.operations import (
    AddIndexConcurrently,
    RemoveIndexConcurrently,
)
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("alerts", "0004_analysis_transient_failure"),
        ("incidents", "0004_analysis_max_chars"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="alert",
            index=models.Index(
                condition=models.Q(
                    ("last_seen_at__isnull", False), ("status", "firing")
                ),
                fields=["last_seen_at"],
                name="alert_stale_sweep",
            ),
        ),
        RemoveIndexConcurrently(
            model_name="alert",
            name="alert_firing_last_seen",
        ),
    ]
