"""Shared steps of the notifications tests."""

from typing import Any

from alerts.events import alerts_fired
from alerts.models import Alert
from incidents.events import incident_opened
from incidents.models import Incident
from notifications.models import SlackMessage
from notifications.tests.factories import AlertFactory, IncidentFactory


def open_incident(
    signal: Any, n: int = 1, **incident_fields: Any
) -> tuple[Incident, list[Alert]]:
    """An incident with `n` firing alerts, announced as ingestion would."""
    incident = IncidentFactory(**incident_fields)
    alerts = AlertFactory.create_batch(n, incident=incident)
    signal(incident_opened, incident_ids=[incident.pk])
    signal(alerts_fired, alert_ids=[a.pk for a in alerts])
    return incident, alerts


def unsent() -> int:
    return SlackMessage.objects.unsent().count()
