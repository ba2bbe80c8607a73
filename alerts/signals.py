"""Receivers that owe the Agent work when alerts and incidents change (SPEC §5).

Each runs inside the sender's transaction, writes at most a constant number of
rows through alerts.analysis and enqueues its task at commit.
"""

from typing import Any

from django.dispatch import receiver

from alerts import analysis, events
from alerts.models import AnalysisStatus
from incidents import events as incident_events


@receiver(events.alerts_fired, dispatch_uid="alerts.analysis.fired")
def analyse_fired_alerts(sender: Any, alert_ids: list[str], **kwargs: Any) -> None:
    analysis.analysis_create_pending(alert_ids=alert_ids, status=AnalysisStatus.FIRING)


@receiver(events.alerts_resolved, dispatch_uid="alerts.analysis.resolved")
def analyse_resolved_alerts(
    sender: Any, alert_ids: list[str], stale: bool = False, **kwargs: Any
) -> None:
    # A stale resolution is kuberca's guess that the alert ended, not news from
    # Alertmanager: there is nothing for the Agent to explain.
    if stale:
        return
    analysis.analysis_create_pending(
        alert_ids=alert_ids, status=AnalysisStatus.RESOLVED
    )


@receiver(incident_events.incident_resolved, dispatch_uid="alerts.analysis.summary")
def summarize_resolved_incident(
    sender: Any, incident_id: str, generation: int, **kwargs: Any
) -> None:
    analysis.summary_schedule(incident_id=incident_id, generation=generation)


@receiver(
    incident_events.incident_analysis_requested,
    dispatch_uid="alerts.analysis.summary_requested",
)
def summarize_on_request(sender: Any, incident_id: str, **kwargs: Any) -> None:
    analysis.analysis_request_incident(incident_id)
