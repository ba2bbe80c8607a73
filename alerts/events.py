"""Domain signals about alerts, sent by alerts.services inside the write.

Receivers defer their work with `transaction.on_commit`. Signals about changes
made by ingestion carry lists, one signal per delivery and kind, so the
webhook's statement count stays constant whatever the number of alerts.
"""

from django.dispatch import Signal

# New firing occurrences were stored, or stale-resolved ones fire again;
# `alert_ids`: list[str].
alerts_fired = Signal()
# Firing alerts became resolved; `alert_ids`: list[str], `stale`: bool (by the
# stale sweep rather than Alertmanager).
alerts_resolved = Signal()
# A person moved alerts to another incident; `alert_ids`: list[str],
# `incident_id`: str (the target), `reason`: "moved" or "merged".
alerts_moved = Signal()
# An Agent analysis of an alert was stored; `alert_id`: str, `analysis_id`: int,
# `status`: "firing" | "resolved".
alert_analyzed = Signal()
