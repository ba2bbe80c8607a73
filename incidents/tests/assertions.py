"""What each incident change leaves in the database, checked the same way
whether it came through the API or the admin console.

Each helper re-reads the rows, so it can be called right after a request.
"""

from incidents.models import Incident


def assert_incident_resolved(
    incident_id: str, by: str, *, generation_before: int | None = None
) -> Incident:
    """Resolved by `by`, with the final analysis of a new generation pending."""
    incident = Incident.objects.get(pk=incident_id)
    assert incident.status == "resolved"
    assert incident.resolved_by == by
    assert incident.resolved_at is not None
    assert incident.summary_status == "pending"
    if generation_before is not None:
        assert incident.summary_generation == generation_before + 1
    return incident


def assert_incident_firing(incident_id: str) -> Incident:
    incident = Incident.objects.get(pk=incident_id)
    assert incident.status == "firing"
    assert incident.resolved_at is None
    assert incident.resolved_by == ""
    return incident


def assert_incident_hidden(incident_id: str) -> Incident:
    incident = Incident.objects.get(pk=incident_id)
    assert incident.is_enabled is False
    return incident


def assert_incident_visible(incident_id: str) -> Incident:
    incident = Incident.objects.get(pk=incident_id)
    assert incident.is_enabled is True
    return incident


def assert_final_analysis_requested(
    incident_id: str, *, generation_before: int
) -> Incident:
    """A new summary generation is pending (the Agent task will claim it)."""
    incident = Incident.objects.get(pk=incident_id)
    assert incident.summary_generation == generation_before + 1
    assert incident.summary_status == "pending"
    return incident


def assert_incidents_merged(
    target_id: str, merged_ids: list[str], *, alert_ids: list[str], merged_by: str
) -> Incident:
    """The alerts sit in the target as merged; the others resolved by the person
    who merged them (SPEC §2: resolved_by is a login id or `alertmanager`)."""
    target = Incident.objects.get(pk=target_id)
    merged = {a.pk: a for a in target.alerts.filter(pk__in=alert_ids)}
    assert sorted(merged) == sorted(alert_ids)
    assert {a.grouping_reason for a in merged.values()} <= {"merged"}
    for incident in Incident.objects.filter(pk__in=merged_ids):
        assert incident.status == "resolved"
        assert incident.resolved_by == merged_by
        assert not incident.alerts.exists()
    return target


def assert_alert_moved(alert_id: str, incident_id: str) -> None:
    """The alert sits in `incident_id`, pinned there as moved by a person."""
    incident = Incident.objects.get(pk=incident_id)
    alert = incident.alerts.get(pk=alert_id)
    assert alert.grouping_reason == "moved"
