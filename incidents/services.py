"""Multi-step writes on incidents, shared by the API, the admin, commands, tasks.

Each function is atomic, takes keyword arguments, raises a DomainError subclass
when a rule forbids the change, and sends the matching signal of
incidents.events inside the transaction (receivers defer work to on_commit).
"""

import logging
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from incidents import events
from incidents.models import (
    ANALYSIS_MAX_CHARS,
    AUTO_RESOLVER,
    RESOLVED_BY_MAX_CHARS,
    SYSTEM_CREATOR,
    TITLE_MAX_CHARS,
    Incident,
    IncidentStatus,
    Severity,
    SummaryStatus,
)
from incidents.selectors import severities
from kuberca import metrics
from kuberca.errors import Conflict, Disabled, InvalidInput, NotFound

logger = logging.getLogger(__name__)

EDITABLE_FIELDS = ("title", "severity", "analysis_summary", "analysis_detail")


def _count(event: str, amount: int = 1) -> None:
    """Count a lifecycle event (opened, reopened, resolved) once it commits.

    A transaction that rolls back or runs again (a delivery retried after a
    conflict) counts nothing or once, as the database saw it.
    """
    transaction.on_commit(
        lambda: metrics.incidents.labels(event=event).inc(amount), robust=True
    )


class IncidentNotFound(NotFound):
    code = "incident not found"
    default_message = "incident not found"


class IncidentAlreadyResolved(Conflict):
    code = "already resolved"
    default_message = "incident is already resolved"


class MockIncidentsDisabled(Disabled):
    code = "mock incidents disabled"
    default_message = "mock incidents are disabled (ALLOW_MOCK_INCIDENTS)"


def _locked(incident_id: str) -> Incident:
    """The incident, row-locked until commit.

    FOR NO KEY UPDATE, as everywhere incidents are locked: a plain FOR UPDATE
    also holds back the foreign key check of every row naming the incident
    (an alert, an analysis, a Slack reply), which PostgreSQL makes at the
    commit of the transaction writing it, after that one took its own locks;
    a resolve waiting for the incident then closed a deadlock and failed.
    """
    try:
        return Incident.objects.select_for_update(no_key=True).get(pk=incident_id)
    except Incident.DoesNotExist:
        raise IncidentNotFound(incident_id=incident_id) from None


@dataclass(frozen=True)
class NewIncident:
    """What opening one incident needs (see incidents_open)."""

    group_key: str
    title: str
    severity: str
    fired_at: datetime
    created_by: str = SYSTEM_CREATOR
    truncated_alerts: int = 0


def incidents_open(*, new: list[NewIncident]) -> list[Incident]:
    """Create firing incidents in one insert and announce them, in `new`'s order.

    One delivery may open an incident per group key it carries; they go to
    the database together, and incident_opened is sent once for all of them.
    """
    if not new:
        return []
    now = timezone.now()
    incidents = Incident.objects.bulk_create(
        [
            Incident(
                group_key=spec.group_key,
                title=spec.title[:TITLE_MAX_CHARS],
                severity=spec.severity or Severity.WARNING,
                status=IncidentStatus.FIRING,
                fired_at=spec.fired_at,
                last_alert_at=now,
                created_by=spec.created_by,
                truncated_alerts=spec.truncated_alerts,
            )
            for spec in new
        ]
    )
    for incident in incidents:
        logger.info(
            "incident opened incident_id=%s group_key=%s",
            incident.pk,
            incident.group_key,
        )
    events.incident_opened.send(
        sender=Incident, incident_ids=[incident.pk for incident in incidents]
    )
    _count("opened", len(incidents))
    return incidents


def incident_resolve(
    *,
    incident_id: str,
    resolved_by: str,
    at: datetime | None = None,
    automatic: bool = False,
) -> Incident:
    """Resolve a firing incident; its alerts are left as they are.

    `automatic` is a resolve by the incident's alerts, recorded as
    AUTO_RESOLVER. A person may not resolve under that name: the next alert of
    the incident's key would reopen it within INCIDENT_REOPEN_WINDOW (SPEC
    §3.3), so the resolve would not hold.

    Raises IncidentNotFound, IncidentAlreadyResolved, and InvalidInput for a
    `resolved_by` that is empty, AUTO_RESOLVER or longer than the column.
    Sends incident_resolved, which starts the final analysis (SPEC §5.2).
    """
    if automatic:
        resolved_by = AUTO_RESOLVER
    elif not resolved_by:
        raise InvalidInput("resolved_by is required", field="resolved_by")
    elif resolved_by == AUTO_RESOLVER:
        raise InvalidInput(
            f"resolved_by {AUTO_RESOLVER!r} stands for a resolve by the "
            "incident's alerts; give the name of the person resolving it",
            field="resolved_by",
        )
    if len(resolved_by) > RESOLVED_BY_MAX_CHARS:
        raise InvalidInput(
            f"resolved_by is at most {RESOLVED_BY_MAX_CHARS} characters",
            field="resolved_by",
        )
    with transaction.atomic():
        incident = _locked(incident_id)
        if incident.is_resolved:
            raise IncidentAlreadyResolved(incident_id=incident_id)
        incident.status = IncidentStatus.RESOLVED
        incident.resolved_at = at or timezone.now()
        incident.resolved_by = resolved_by
        incident.summary_generation += 1
        incident.summary_status = SummaryStatus.PENDING
        incident.summary_error = ""
        incident.summary_attempts = 0
        incident.save(
            update_fields=[
                "status",
                "resolved_at",
                "resolved_by",
                "summary_generation",
                "summary_status",
                "summary_error",
                "summary_attempts",
                "updated_at",
            ]
        )
        logger.info(
            "incident resolved incident_id=%s by=%s", incident.pk, incident.resolved_by
        )
        events.incident_resolved.send(
            sender=Incident,
            incident_id=incident.pk,
            resolved_by=incident.resolved_by,
            generation=incident.summary_generation,
        )
        events.incident_changed.send(
            sender=Incident, incident_id=incident.pk, fields=["status"]
        )
        _count("resolved")
    return incident


def incident_reopen(*, incident: Incident) -> Incident:
    """Bring a resolved incident back to firing. The caller holds the row lock."""
    incident.status = IncidentStatus.FIRING
    incident.resolved_at = None
    incident.resolved_by = ""
    incident.last_alert_at = timezone.now()
    incident.save(
        update_fields=[
            "status",
            "resolved_at",
            "resolved_by",
            "last_alert_at",
            "updated_at",
        ]
    )
    logger.info("incident reopened incident_id=%s", incident.pk)
    events.incident_reopened.send(sender=Incident, incident_id=incident.pk)
    events.incident_changed.send(
        sender=Incident, incident_id=incident.pk, fields=["status"]
    )
    _count("reopened")
    return incident


def _blank(text: str) -> bool:
    """Nothing to read: only spaces, controls or invisible formatting (U+200B)."""
    return all(
        char.isspace() or unicodedata.category(char) in ("Cc", "Cf") for char in text
    )


def incident_changes_check(
    *, data: dict[str, Any], incident: Incident | None = None
) -> dict[str, str]:
    """Return the editable fields of `data`, checked and normalised.

    Raises InvalidInput naming the field for a wrong type, an unknown
    severity, a too long title, a too long analysis and, given the `incident`
    edited, a new title that is blank. The frontend sends the whole detail
    back with every edit, so the incident's own title and severity sent back
    unchanged are no edit, even a blank title kuberca made from an alert's
    blank summary, or a severity INGEST_SEVERITIES no longer lets in.
    incident_update checks with it; the admin's form too, to show the problem
    beside the field.
    """
    changes: dict[str, str] = {}
    for field in EDITABLE_FIELDS:
        if field not in data:
            continue
        value = data[field]
        if not isinstance(value, str):
            raise InvalidInput(f"{field} must be a string", field=field)
        changes[field] = value
    if "severity" in changes:
        severity = changes["severity"].strip().lower()
        # Also one the ingest gate lets in: an incident can hold it, and the
        # frontend sends an incident's severity back with every edit.
        # And the incident's own, sent back unchanged, even one that
        # INGEST_SEVERITIES no longer lets in.
        allowed = severities()
        kept = incident is not None and severity == incident.severity
        if severity not in allowed and not kept:
            raise InvalidInput(
                f"severity must be one of {', '.join(allowed)}", field="severity"
            )
        changes["severity"] = severity
    if "title" in changes and len(changes["title"]) > TITLE_MAX_CHARS:
        raise InvalidInput(
            f"title must be at most {TITLE_MAX_CHARS} characters", field="title"
        )
    for field in ("analysis_summary", "analysis_detail"):
        if len(changes.get(field, "")) > ANALYSIS_MAX_CHARS:
            raise InvalidInput(
                f"{field} must be at most {ANALYSIS_MAX_CHARS} characters",
                field=field,
            )
    title = changes.get("title")
    if incident is not None and title is not None and title != incident.title:
        if _blank(title):
            raise InvalidInput("title must not be blank", field="title")
    return changes


def incident_update(*, incident_id: str, data: dict[str, Any]) -> Incident:
    """Apply the editable fields present in `data`; other keys are ignored.

    Raises InvalidInput (see incident_changes_check), IncidentNotFound.
    """
    with transaction.atomic():
        incident = _locked(incident_id)
        changes = incident_changes_check(data=data, incident=incident)
        changed = [f for f, v in changes.items() if getattr(incident, f) != v]
        for field in changed:
            setattr(incident, field, changes[field])
        if changed:
            incident.save(update_fields=[*changed, "updated_at"])
            events.incident_changed.send(
                sender=Incident, incident_id=incident.pk, fields=changed
            )
    logger.info("incident updated incident_id=%s fields=%s", incident_id, changed)
    return incident


def _set_visibility(incident_id: str, is_enabled: bool) -> Incident:
    with transaction.atomic():
        incident = _locked(incident_id)
        if incident.is_enabled != is_enabled:
            incident.is_enabled = is_enabled
            incident.save(update_fields=["is_enabled", "updated_at"])
            events.incident_visibility_changed.send(
                sender=Incident, incident_id=incident.pk, is_enabled=is_enabled
            )
    logger.info(
        "incident visibility incident_id=%s visible=%s", incident_id, is_enabled
    )
    return incident


def incident_hide(*, incident_id: str) -> Incident:
    """Hide an incident: it leaves the lists and new alerts no longer join it."""
    return _set_visibility(incident_id, False)


def incident_unhide(*, incident_id: str) -> Incident:
    return _set_visibility(incident_id, True)


def incident_create_mock(*, created_by: str) -> Incident:
    """Open a firing `warning` test incident (ALLOW_MOCK_INCIDENTS only)."""
    from django.conf import settings

    if not settings.ALLOW_MOCK_INCIDENTS:
        raise MockIncidentsDisabled()
    with transaction.atomic():
        (incident,) = incidents_open(
            new=[
                NewIncident(
                    group_key="mock",
                    title="Mock incident for testing",
                    severity=Severity.WARNING,
                    fired_at=timezone.now(),
                    created_by=created_by,
                )
            ]
        )
        return incident
