"""The Slack outbox: one SlackMessage row per message kuberca posts (SPEC §2, §4).

A row is written `pending` in the same transaction as the change it tells of,
so nothing is lost between commit and the worker; the delivery code claims it
(pending → sending), posts, and records `ts`. The incident's root row is also
its thread: it holds the thread's lease, its pacing and the revision of the
incident state that Slack shows.
"""

from datetime import datetime

from django.db import models
from django.db.models import F, Q

from alerts.models import Alert, AlertAnalysis
from incidents.models import Incident


class MessageKind(models.TextChoices):
    INCIDENT_ROOT = "incident_root"
    ALERT_FIRING = "alert_firing"
    ALERT_RESOLVED = "alert_resolved"
    ANALYSIS = "analysis"
    SUMMARY = "summary"


# Replies that alerts joining or resolving are folded into while pending.
COALESCED_KINDS = (MessageKind.ALERT_FIRING, MessageKind.ALERT_RESOLVED)


class MessageState(models.TextChoices):
    PENDING = "pending"
    SENDING = "sending", "sending (claimed by a worker)"
    SENT = "sent"
    FAILED = "failed"


UNSENT_STATES = (MessageState.PENDING, MessageState.SENDING)


class SlackMessageQuerySet(models.QuerySet["SlackMessage"]):
    def roots(self) -> "SlackMessageQuerySet":
        return self.filter(kind=MessageKind.INCIDENT_ROOT)

    def replies(self) -> "SlackMessageQuerySet":
        return self.exclude(kind=MessageKind.INCIDENT_ROOT)

    def unsent(self) -> "SlackMessageQuerySet":
        return self.filter(state__in=UNSENT_STATES)


class SlackMessage(models.Model):
    incident = models.ForeignKey(
        Incident, on_delete=models.CASCADE, related_name="slack_messages"
    )
    alert = models.ForeignKey(
        Alert, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=32, choices=MessageKind.choices)
    channel = models.CharField(max_length=64)
    ts = models.CharField(max_length=64, blank=True, default="")
    thread_ts = models.CharField(max_length=64, blank=True, default="")

    state = models.CharField(
        max_length=16, choices=MessageState.choices, default=MessageState.PENDING
    )
    error = models.TextField(blank=True, default="")
    attempts = models.IntegerField(default=0)
    # Not to be tried again before this (backoff after a transient error).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # The alerts a coalesced firing/resolved reply covers, in arrival order.
    alert_ids = models.JSONField(default=list, blank=True)
    analysis = models.ForeignKey(
        AlertAnalysis,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # The summary generation a `summary` reply tells of (Incident.summary_generation).
    generation = models.IntegerField(null=True, blank=True)

    # Root rows only. `revision` is bumped whenever the incident's status,
    # severity, title or alert count changes; `posted_revision` is the one
    # Slack shows. Edits collapse: one chat.update shows the latest state.
    revision = models.IntegerField(default=0)
    posted_revision = models.IntegerField(default=0)
    # The thread's lease: the one worker allowed to post in this thread now.
    lease_owner = models.CharField(max_length=64, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # When the last round of replies and edits started (pacing, SPEC §4).
    last_round_at = models.DateTimeField(null=True, blank=True)
    # A delivery task is enqueued to run at this time.
    wake_at = models.DateTimeField(null=True, blank=True)
    # The channel turn (SlackChannel) this thread holds for its next call.
    turn_at = models.DateTimeField(null=True, blank=True)
    # When this round of tries began, where GIVE_UP_AFTER counts from, if not
    # created_at: a root edit's first failure (a root may be days old), an
    # operator's retry of a failed message. Cleared once it is sent or edited.
    tries_since = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)

    objects = SlackMessageQuerySet.as_manager()

    class Meta:
        ordering = ["incident", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident"],
                condition=Q(kind="incident_root"),
                name="slack_one_root_per_incident",
            ),
            models.UniqueConstraint(
                fields=["analysis"],
                condition=Q(kind="analysis"),
                name="slack_one_reply_per_analysis",
            ),
            models.UniqueConstraint(
                fields=["incident", "generation"],
                condition=Q(kind="summary"),
                name="slack_one_reply_per_summary",
            ),
        ]
        indexes = [
            models.Index(
                fields=["incident", "kind"],
                name="slack_unsent_by_incident",
                condition=Q(state__in=["pending", "sending"]),
            ),
            models.Index(
                fields=["created_at"],
                name="slack_unsent_by_age",
                condition=Q(state__in=["pending", "sending"]),
            ),
            models.Index(
                fields=["incident"],
                name="slack_root_edit_due",
                condition=Q(kind="incident_root", revision__gt=F("posted_revision")),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} of {self.incident_id} ({self.state})"

    @property
    def is_root(self) -> bool:
        return self.kind == MessageKind.INCIDENT_ROOT

    @property
    def post_tries_began(self) -> datetime:
        """Where GIVE_UP_AFTER counts from for posting this message."""
        return self.tries_since or self.created_at

    @property
    def edit_due(self) -> bool:
        return (
            self.is_root
            and self.state == MessageState.SENT
            and (self.revision > self.posted_revision)
        )


class SlackChannel(models.Model):
    """The pacing of one channel (SPEC §4: Slack takes about one message per
    second per channel).

    Each post takes the channel's next turn. Posts go at once until Slack
    answers 429; then no turn comes before its Retry-After, and for a while
    (`paced_until`) turns are SLACK_CHANNEL_INTERVAL apart, so a burst of
    threads queues instead of trading 429s.
    """

    channel = models.CharField(max_length=64, primary_key=True)
    next_turn_at = models.DateTimeField()
    paced_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.channel} (next turn {self.next_turn_at:%H:%M:%S})"
