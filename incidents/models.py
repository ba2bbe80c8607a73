"""The Incident model: one problem, the alerts that belong to it, its analysis.

Rules about one incident are methods here; reusable queries live on
IncidentQuerySet. Multi-step writes are in incidents.services.
"""

import secrets

from django.db import models
from django.db.models import Q


def new_incident_id() -> str:
    return "INC-" + secrets.token_hex(8)


class Severity(models.TextChoices):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


_SEVERITY_RANK = {"critical": 3, "warning": 2, "info": 1}


def severity_rank(severity: str) -> int:
    """critical > warning > info > anything else."""
    return _SEVERITY_RANK.get((severity or "").lower(), 0)


def highest_severity(*severities: str) -> str:
    present = [s for s in severities if s]
    return max(present, key=severity_rank) if present else Severity.WARNING


class IncidentStatus(models.TextChoices):
    FIRING = "firing"
    RESOLVED = "resolved"


class SummaryStatus(models.TextChoices):
    NONE = "", "not requested"
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


AUTO_RESOLVER = "alertmanager"
SYSTEM_CREATOR = "system"
TITLE_MAX_CHARS = 2000
# A login id (Django's usernames are at most 150) or "alertmanager".
RESOLVED_BY_MAX_CHARS = 150
# The full-text index holds title, summary and detail in one tsvector, which
# PostgreSQL caps at 1 MB; two analyses of this many characters stay under it
# whatever their words.
ANALYSIS_MAX_CHARS = 100_000


class IncidentQuerySet(models.QuerySet["Incident"]):
    def visible(self) -> "IncidentQuerySet":
        return self.filter(is_enabled=True)

    def hidden(self) -> "IncidentQuerySet":
        return self.filter(is_enabled=False)

    def open(self) -> "IncidentQuerySet":
        """Firing and visible: the incidents new alerts may join."""
        return self.filter(status=IncidentStatus.FIRING, is_enabled=True)

    def with_key(self, group_key: str) -> "IncidentQuerySet":
        return self.filter(group_key=group_key)

    def resolved_without_summary(self) -> "IncidentQuerySet":
        """Resolved, with no final analysis summary (yet, or ever)."""
        return self.filter(status=IncidentStatus.RESOLVED, analysis_summary="")


class Incident(models.Model):
    incident_id = models.CharField(
        primary_key=True, max_length=32, default=new_incident_id, editable=False
    )
    title = models.TextField(default="")
    severity = models.CharField(max_length=32, default=Severity.WARNING)
    status = models.CharField(
        max_length=16, choices=IncidentStatus.choices, default=IncidentStatus.FIRING
    )
    fired_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(
        max_length=RESOLVED_BY_MAX_CHARS, blank=True, default=""
    )
    analysis_summary = models.TextField(
        blank=True, default="", max_length=ANALYSIS_MAX_CHARS
    )
    analysis_detail = models.TextField(
        blank=True, default="", max_length=ANALYSIS_MAX_CHARS
    )
    created_by = models.CharField(max_length=150, default=SYSTEM_CREATOR)
    is_enabled = models.BooleanField(default=True)
    group_key = models.TextField(blank=True, default="")
    # When the last alert joined: the group window counts from here.
    last_alert_at = models.DateTimeField(null=True, blank=True)
    # Highest truncatedAlerts seen on a delivery that fed this incident.
    truncated_alerts = models.IntegerField(default=0)
    # Final analysis (SPEC §5.2): bumped on every resolve so a reopened and
    # re-resolved incident is summarised again; the task claims a generation.
    summary_generation = models.IntegerField(default=0)
    summary_status = models.CharField(
        max_length=16, choices=SummaryStatus.choices, blank=True, default=""
    )
    summary_error = models.TextField(blank=True, default="")
    # The final analysis failed for want of the Agent (5xx, no answer), not
    # refused by it: it is asked for again later.
    summary_transient_failure = models.BooleanField(default=False, db_default=False)
    # Agent calls begun for this generation's final analysis, counted before
    # each call, so a worker lost mid-call still counts its attempt.
    summary_attempts = models.IntegerField(default=0, db_default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = IncidentQuerySet.as_manager()

    class Meta:
        ordering = ["-fired_at", "-incident_id"]
        indexes = [
            models.Index(
                fields=["group_key", "last_alert_at"],
                name="incident_open_by_key",
                condition=Q(status="firing", is_enabled=True),
            ),
            models.Index(
                fields=["-fired_at", "-incident_id"], name="incident_fired_desc"
            ),
            models.Index(
                fields=["group_key", "resolved_at"],
                name="incident_resolved_by_key",
                condition=Q(status="resolved"),
            ),
            models.Index(
                fields=["status", "severity"], name="incident_status_severity"
            ),
            models.Index(
                fields=["updated_at"],
                name="incident_summary_outage",
                condition=Q(summary_status="failed", summary_transient_failure=True),
            ),
            models.Index(
                fields=["updated_at"],
                name="incident_summary_pending",
                condition=Q(summary_status="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.incident_id} {self.title}"

    @property
    def is_open(self) -> bool:
        return self.status == IncidentStatus.FIRING and self.is_enabled

    @property
    def is_resolved(self) -> bool:
        return self.status == IncidentStatus.RESOLVED

    @property
    def was_auto_resolved(self) -> bool:
        return self.is_resolved and self.resolved_by == AUTO_RESOLVER
