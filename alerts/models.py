"""Alert occurrences, the raw webhook ledger, and the Agent's analyses.

An alert occurrence is `(fingerprint, fired_at)`; the database also allows only
one firing alert per fingerprint, so retries and repeats never make a second
row. WebhookDelivery keeps every request as received (SPEC §3.1).
"""

import secrets

from django.db import connections, models
from django.db.models import Q

from incidents.models import Incident


def new_alert_id() -> str:
    """`ALR-` and 112 random bits, as many as the column holds.

    Ingestion writes alerts with one upsert keyed on alert_id, so a new id
    equal to a stored one would overwrite that alert rather than fail; at
    this size no store ever sees two. (A repeated incident id fails its
    insert, and the delivery is retried.)
    """
    return "ALR-" + secrets.token_hex(14)


class AlertStatus(models.TextChoices):
    FIRING = "firing"
    RESOLVED = "resolved"


class GroupingReason(models.TextChoices):
    JOINED = "joined", "joined the open incident of its key"
    REOPENED = "reopened", "reopened a recently auto-resolved incident"
    NEW_INCIDENT = "new_incident", "opened a new incident"
    GLOBAL = "global", "joined the global incident"
    MOVED = "moved", "moved by a person"
    MERGED = "merged", "merged by a person"
    UNGROUPED = "ungrouped", "resolved before it was seen firing; no open incident"


PINNED_REASONS = {GroupingReason.MOVED, GroupingReason.MERGED}


_NAMESPACES = """
WITH RECURSIVE names(namespace) AS (
    (SELECT namespace FROM alerts_alert WHERE namespace > ''
     ORDER BY namespace LIMIT 1)
    UNION ALL
    SELECT (SELECT a.namespace FROM alerts_alert a
            WHERE a.namespace > names.namespace ORDER BY a.namespace LIMIT 1)
    FROM names WHERE names.namespace IS NOT NULL
)
SELECT namespace FROM names WHERE namespace IS NOT NULL LIMIT %s
"""


class AlertQuerySet(models.QuerySet["Alert"]):
    def firing(self) -> "AlertQuerySet":
        return self.filter(status=AlertStatus.FIRING)

    def visible(self) -> "AlertQuerySet":
        return self.filter(is_enabled=True)

    def namespaces(self, *, limit: int) -> list[str]:
        """The first `limit` distinct non-empty namespaces of all alerts, in order.

        A loose index scan: one probe of alert_namespace_fired per name, where
        a DISTINCT reads every alert's index entry.
        """
        with connections[self.db].cursor() as cursor:
            cursor.execute(_NAMESPACES, [limit])
            return [namespace for (namespace,) in cursor.fetchall()]


class Alert(models.Model):
    alert_id = models.CharField(
        primary_key=True, max_length=32, default=new_alert_id, editable=False
    )
    incident = models.ForeignKey(
        Incident,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="alerts",
    )
    fingerprint = models.CharField(max_length=255)
    alarm_title = models.TextField(default="")
    severity = models.CharField(max_length=32, default="warning")
    status = models.CharField(max_length=16, choices=AlertStatus.choices)
    fired_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    labels = models.JSONField(default=dict)
    annotations = models.JSONField(default=dict)
    generator_url = models.TextField(blank=True, default="")
    # labels.namespace, kept as a column for filters and indexes.
    # null (no namespace label) and "" (an empty one) differ for the API.
    namespace = models.CharField(max_length=253, null=True, blank=True)  # noqa: DJ001
    # The correlation key of INCIDENT_GROUP_BY at the time it was grouped.
    group_key = models.TextField(blank=True, default="")
    analysis_summary = models.TextField(blank=True, default="")
    analysis_detail = models.TextField(blank=True, default="")
    thread_ts = models.CharField(max_length=64, blank=True, default="")
    grouping_reason = models.CharField(
        max_length=32, choices=GroupingReason.choices, blank=True, default=""
    )
    is_enabled = models.BooleanField(default=True)
    # Resolved by kuberca's stale sweep, not by Alertmanager: a later firing
    # delivery of the same occurrence may bring it back (SPEC §3.3).
    resolved_as_stale = models.BooleanField(default=False)
    last_seen_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ["-fired_at", "-alert_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["fingerprint", "fired_at"], name="alert_occurrence_unique"
            ),
            models.UniqueConstraint(
                fields=["fingerprint"],
                condition=Q(status="firing"),
                name="alert_one_firing_per_fingerprint",
            ),
        ]
        indexes = [
            models.Index(fields=["incident", "-fired_at"], name="alert_by_incident"),
            models.Index(fields=["-fired_at", "-alert_id"], name="alert_fired_desc"),
            # For the stale sweep (last_seen_at < cutoff). The column is never
            # null: the second condition only keeps a lookup of a firing alert
            # by fingerprint, which cannot prove it, on the firing index. With
            # statistics of no firing alert both looked as cheap, and the
            # planner could read every firing alert to find one fingerprint's.
            models.Index(
                fields=["last_seen_at"],
                name="alert_stale_sweep",
                condition=Q(status="firing", last_seen_at__isnull=False),
            ),
            models.Index(fields=["severity", "-fired_at"], name="alert_severity_fired"),
            # The API lists only visible alerts: these serve its pages and its
            # X-Total-Count without a sort or a scan of hidden rows.
            models.Index(
                fields=["-fired_at", "-alert_id"],
                name="alert_visible_fired",
                condition=Q(is_enabled=True),
            ),
            models.Index(
                fields=["severity", "-fired_at", "-alert_id"],
                name="alert_visible_severity_fired",
                condition=Q(is_enabled=True),
            ),
            models.Index(
                fields=["namespace", "-fired_at"], name="alert_namespace_fired"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.alert_id} {self.alarm_title}"

    @property
    def is_firing(self) -> bool:
        return self.status == AlertStatus.FIRING

    @property
    def is_pinned(self) -> bool:
        """Placed by a person: later deliveries never move it."""
        return self.grouping_reason in PINNED_REASONS


class DeliveryOutcome(models.TextChoices):
    RECEIVED = "received", "received, not yet processed"
    PROCESSED = "processed"
    REJECTED = "rejected"
    FAILED = "failed"


class WebhookDelivery(models.Model):
    """One webhook request as received, committed before it is processed."""

    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    body = models.BinaryField(default=b"")
    body_size = models.IntegerField(default=0)
    body_truncated = models.BooleanField(default=False)
    headers = models.JSONField(default=dict)
    source_address = models.GenericIPAddressField(null=True, blank=True)
    group_key = models.TextField(blank=True, default="")
    receiver = models.TextField(blank=True, default="")
    truncated_alerts = models.IntegerField(default=0)
    outcome = models.CharField(
        max_length=16, choices=DeliveryOutcome.choices, default=DeliveryOutcome.RECEIVED
    )
    http_status = models.IntegerField(null=True, blank=True)
    alert_count = models.IntegerField(default=0)
    stored = models.IntegerField(default=0)
    duplicates = models.IntegerField(default=0)
    ignored = models.IntegerField(default=0)
    rejected = models.IntegerField(default=0)
    rejections = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True, default="")
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(fields=["outcome", "received_at"], name="delivery_outcome")
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} {self.outcome}"


class AnalysisStatus(models.TextChoices):
    FIRING = "firing"
    RESOLVED = "resolved"


class AnalysisState(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class AnalysisTrigger(models.TextChoices):
    AUTO = "auto", "automatic"
    MANUAL = "manual", "asked for by a person"


class AlertAnalysis(models.Model):
    """One Agent analysis of an alert in one status (SPEC §5.1).

    The row is created `pending` in the same transaction as the change it
    analyses; it is the claim: one automatic analysis per alert and status.
    """

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="analyses")
    incident = models.ForeignKey(
        Incident, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=16, choices=AnalysisStatus.choices)
    trigger = models.CharField(
        max_length=16, choices=AnalysisTrigger.choices, default=AnalysisTrigger.AUTO
    )
    state = models.CharField(
        max_length=16, choices=AnalysisState.choices, default=AnalysisState.PENDING
    )
    summary = models.TextField(blank=True, default="")
    detail = models.TextField(blank=True, default="")
    analysis = models.TextField(blank=True, default="")
    context = models.JSONField(default=dict, blank=True)
    attempts = models.IntegerField(default=0)
    error = models.TextField(blank=True, default="")
    # Failed for want of the Agent (5xx, timeouts, a lost worker), not refused
    # by it: recover_analyses gives such a row another round of attempts.
    transient_failure = models.BooleanField(default=False, db_default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "alert analyses"
        constraints = [
            models.UniqueConstraint(
                fields=["alert", "status"],
                condition=Q(trigger="auto"),
                name="analysis_one_auto_per_alert_status",
            )
        ]
        indexes = [
            models.Index(
                fields=["updated_at"],
                name="analysis_unfinished",
                condition=Q(state__in=["pending", "running"]),
            ),
            models.Index(
                fields=["completed_at"],
                name="analysis_outage_failed",
                condition=Q(state="failed", transient_failure=True),
            ),
        ]

    def __str__(self) -> str:
        return f"analysis {self.pk} of {self.alert_id} ({self.status})"


class AnalysisArtifact(models.Model):
    analysis = models.ForeignKey(
        AlertAnalysis, on_delete=models.CASCADE, related_name="artifacts"
    )
    artifact_type = models.CharField(max_length=64, blank=True, default="")
    query = models.TextField(blank=True, default="")
    result = models.JSONField(default=dict, blank=True, null=True)
    summary = models.TextField(blank=True, default="")

    def __str__(self) -> str:
        return f"{self.artifact_type} artifact of analysis {self.analysis_id}"


class WebhookRateCounter(models.Model):
    """Webhook requests of one client in one minute (WEBHOOK_RATE_LIMIT).

    Kept in the database, not in process memory, so every web worker counts
    against the same limit.
    """

    client = models.CharField(max_length=64)
    window_start = models.DateTimeField()
    count = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["client", "window_start"], name="rate_counter_unique"
            )
        ]
        indexes = [models.Index(fields=["window_start"], name="rate_counter_window")]

    def __str__(self) -> str:
        return f"{self.client} {self.window_start:%H:%M} {self.count}"
