"""Domain signals about alerts, sent by alerts.services inside the write.

Receivers defer their work with `transaction.on_commit`. Every signal passes
`alert_id` (str) and `incident_id` (str or None).
"""

from django.dispatch import Signal

# A new firing occurrence was stored (or a stale-resolved one fires again).
alert_fired = Signal()
# A firing alert became resolved; `stale`: bool (resolved by the stale sweep).
alert_resolved = Signal()
# A person moved the alert; `from_incident_id`: str or None.
alert_moved = Signal()
# An Agent analysis of the alert was stored; `analysis_id`: int, `status`: str.
alert_analyzed = Signal()
