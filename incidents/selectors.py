"""Read-side queries of the incident API: filtered lists and detail parts.

Lists are built so that one page costs the same statements whatever its
length: `alert_count` is a correlated subquery on the alert index, not a
count per row. Alerts are reached through the `alerts` reverse relation, so
this app never imports the alerts app.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, TypedDict

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Count, Exists, IntegerField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils.module_loading import import_string

from incidents.models import Incident, IncidentQuerySet, IncidentStatus, Severity
from kuberca.pagination import choice_param, text_param, time_param

logger = logging.getLogger(__name__)

ANALYZING_STATES = ("pending", "running")
# The similar-incidents search is an extra on the detail page: past this it is
# cancelled and the detail answers with `similar_incidents: []`.
SIMILAR_TIMEOUT_MS = 200
STATUSES = tuple(IncidentStatus.values)


def severities() -> tuple[str, ...]:
    """The severities a list can filter by: the known three and any other
    that INGEST_SEVERITIES lets in (an alert keeps its label's value)."""
    return tuple(dict.fromkeys([*Severity.values, *settings.INGEST_SEVERITIES]))


@dataclass(frozen=True)
class ListFilters:
    """The filters shared by the incident and alert lists (SPEC §7 Lists)."""

    status: list[str]
    severity: list[str]
    namespace: str
    q: str
    since: datetime | None
    until: datetime | None

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> "ListFilters":
        """Read and check the filters; raises InvalidParameter naming the one."""
        since = time_param(params, "since")
        until = time_param(params, "until")
        return cls(
            status=choice_param(params, "status", STATUSES, many=False),
            severity=choice_param(params, "severity", severities(), many=True),
            namespace=text_param(params, "namespace", max_length=253),
            q=text_param(params, "q"),
            since=since,
            until=until,
        )

    def time_and_choice_q(self) -> Q:
        """The filters that read the same columns on incidents and alerts."""
        condition = Q()
        if self.status:
            condition &= Q(status=self.status[0])
        if self.severity:
            condition &= Q(severity__in=self.severity)
        if self.since:
            condition &= Q(fired_at__gte=self.since)
        if self.until:
            # Times are shown to the second: `until` at a whole second takes in
            # everything fired during that second, as shown. (Its last
            # microsecond, not the next second: 9999-12-31T23:59:59 has none.)
            until = self.until
            if until.microsecond == 0:
                until = until.replace(microsecond=999_999)
            condition &= Q(fired_at__lte=until)
        return condition


def alert_filter_q(filters: ListFilters) -> Q:
    """The list filters as a condition on alert rows (by field name only)."""
    condition = filters.time_and_choice_q()
    if filters.namespace:
        condition &= Q(namespace=filters.namespace)
    if filters.q:
        condition &= (
            Q(alarm_title__icontains=filters.q)
            | Q(alert_id=filters.q)
            | Q(fingerprint=filters.q)
        )
    return condition


def _alert_model() -> Any:
    return Incident._meta.get_field("alerts").related_model


def alert_count_subquery() -> Coalesce:
    counted = (
        _alert_model()
        .objects.filter(incident=OuterRef("pk"), is_enabled=True)
        .order_by()
        .values("incident")
        .annotate(n=Count("*"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def incident_list(*, hidden: bool, filters: ListFilters) -> IncidentQuerySet:
    """Visible (or hidden) incidents, newest fired_at first, with alert_count.

    Namespace matches incidents with a visible alert in that namespace; `q`
    matches the title (case-insensitive) or the exact incident id.
    """
    base = Incident.objects.hidden() if hidden else Incident.objects.visible()
    queryset = base.filter(filters.time_and_choice_q())
    if filters.namespace:
        in_namespace = _alert_model().objects.filter(
            incident=OuterRef("pk"), namespace=filters.namespace, is_enabled=True
        )
        queryset = queryset.filter(Exists(in_namespace))
    if filters.q:
        queryset = queryset.filter(
            Q(title__icontains=filters.q) | Q(incident_id=filters.q)
        )
    return queryset.order_by("-fired_at", "-incident_id")


LIST_FIELDS = ("incident_id", "title", "severity", "status", "fired_at", "resolved_at")
ALERT_ITEM_FIELDS = (
    "alert_id",
    "incident_id",
    "alarm_title",
    "namespace",
    "severity",
    "status",
    "fired_at",
    "resolved_at",
    "labels",
)


def incident_list_page(queryset: IncidentQuerySet) -> Any:
    """The list rows as dicts, with alert_count."""
    return queryset.annotate(alert_count=alert_count_subquery()).values(
        *LIST_FIELDS, "alert_count"
    )


def incident_alerts(incident_id: str) -> Any:
    """The visible alerts of an incident, newest fired_at first."""
    return (
        _alert_model()
        .objects.filter(incident_id=incident_id, is_enabled=True)
        .order_by("-fired_at", "-alert_id")
    )


def incident_is_analyzing(incident: Incident) -> bool:
    """True while the final analysis or an analysis of one of its alerts runs."""
    if incident.summary_status == "pending":
        return True
    return (
        _alert_model()
        .objects.filter(incident_id=incident.pk, analyses__state__in=ANALYZING_STATES)
        .exists()
    )


class SimilarIncident(TypedDict):
    incident_id: str
    title: str
    score: float


@cache
def _finder(path: str) -> Any:
    try:
        return import_string(path)
    except ImportError:
        logger.warning("similar incidents finder unavailable path=%s", path)
        return None


def similar_incidents(incident: Incident, *, limit: int = 5) -> list[SimilarIncident]:
    """Ask settings.SIMILAR_INCIDENTS_FINDER; `[]` when it is missing or fails."""
    finder = _finder(settings.SIMILAR_INCIDENTS_FINDER)
    if finder is None:
        return []
    try:
        # A savepoint, so a failed search never breaks the caller's
        # transaction; the local timeout keeps a slow search from holding the
        # detail page (rolled back with the savepoint, restored otherwise).
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('statement_timeout'),"
                " set_config('statement_timeout', %s, true)",
                [f"{SIMILAR_TIMEOUT_MS}ms"],
            )
            previous = cursor.fetchone()[0]
            found = list(finder(incident, limit=limit))
            cursor.execute(
                "SELECT set_config('statement_timeout', %s, true)", [previous]
            )
    except DatabaseError as error:
        logger.warning(
            "similar incidents search failed incident_id=%s error=%s",
            incident.pk,
            type(error.__cause__ or error).__name__,
        )
        return []
    return [
        {
            "incident_id": str(item["incident_id"]),
            "title": str(item.get("title", "")),
            "score": float(item.get("score", 0.0)),
        }
        for item in found[:limit]
    ]
