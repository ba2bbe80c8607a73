"""The Slack outbox: recording what to say, and saying it in order, once.

Receivers call the `messages_record_*` functions inside the transaction of the
change (so a crash after commit loses nothing); `thread_deliver` is what the
delivery task runs. One worker at a time holds a thread's lease (on the root
row) and posts that thread's rows in order: the root first, replies only once
the root has a ts. Each row is claimed (pending → sending) before its post and
marked sent with its ts after, so a second run or a second worker posts
nothing twice. A row found still "sending" (its worker died, or Slack's answer
was lost) is first looked for in Slack by the metadata of its post. Replies
and root edits go in rounds at most one per SLACK_THREAD_INTERVAL, so a burst
of alerts becomes a few coalesced messages.
"""

import logging
import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from time import sleep
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from alerts.models import Alert, AlertAnalysis
from incidents.models import Incident
from kuberca import metrics
from notifications.models import (
    COALESCED_KINDS,
    MessageKind,
    MessageState,
    SlackMessage,
)
from notifications.rendering import render_message
from notifications.slack import SlackClient, SlackError, slack_client

logger = logging.getLogger(__name__)

# A thread's lease outlives any one Slack call (SLACK_TIMEOUT_SECONDS) and is
# renewed before each; a worker killed while holding it blocks its thread for
# at most this long.
LEASE: timedelta = settings.SLACK_LEASE
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 300.0
# Slack's Retry-After is honoured up to this; a larger one (or "inf") would
# park the message for years, or overflow the date of its next try.
RETRY_AFTER_CAP_SECONDS = 3600.0
# Transient failures are retried for this long; then the row fails for good.
GIVE_UP_AFTER = timedelta(hours=24)
# Unsent rows older than this with no task in sight are re-enqueued.
RECOVER_AFTER: timedelta = settings.SLACK_RECOVER_AFTER
MAX_PASSES = 20
# An earlier attempt's post is looked for from this long before its row was
# made: Slack's clock and ours may differ a little.
LOOKUP_MARGIN = timedelta(minutes=5)


def slack_enabled() -> bool:
    return bool(settings.SLACK_ENABLED)


def retry_delay(
    attempts: int,
    retry_after: float | None = None,
    *,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before the next try after `attempts` failed ones.

    Slack's Retry-After wins when given (up to an hour, plus a little jitter,
    so threads spread out); otherwise exponential backoff with equal jitter,
    capped.
    """
    if retry_after is not None:
        return min(retry_after, RETRY_AFTER_CAP_SECONDS) + rand() * 0.5
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1))
    return ceiling / 2 + rand() * ceiling / 2


# Recording: inside the caller's transaction (no savepoint of its own, so it
# costs only its statements: a constant number, whatever the alert count).


def _ensure_roots(incident_ids: Iterable[str]) -> None:
    SlackMessage.objects.bulk_create(
        [
            SlackMessage(
                incident_id=incident_id,
                kind=MessageKind.INCIDENT_ROOT,
                channel=settings.SLACK_CHANNEL_ID,
            )
            for incident_id in incident_ids
        ],
        ignore_conflicts=True,
    )


def _bump_roots(incident_ids: Iterable[str]) -> None:
    SlackMessage.objects.roots().filter(incident_id__in=list(incident_ids)).update(
        revision=F("revision") + 1
    )


def messages_record_root(*, incident_ids: list[str]) -> list[str]:
    """Make sure each incident has a root message (pending until posted)."""
    with transaction.atomic(savepoint=False):
        _ensure_roots(incident_ids)
    return incident_ids


def messages_record_incident_change(*, incident_ids: list[str]) -> list[str]:
    """The incidents' root messages must be edited to show their new state.

    Only roots that exist are touched: a change alone never opens a thread.
    """
    with transaction.atomic(savepoint=False):
        _bump_roots(incident_ids)
    return incident_ids


def messages_record_alerts(*, kind: str, alert_ids: list[str]) -> list[str]:
    """Fold alerts that fired or resolved into their incident's pending reply.

    One pending reply of `kind` per incident collects every alert that comes
    while it waits (SPEC §4 coalescing); a new one is made when there is none,
    or when an alert is in a reply of the other kind queued after it, so the
    thread tells of each alert in the order it happened.
    Roots are made when missing and marked for an edit (the count changed).
    Returns the incidents concerned.
    """
    by_incident: dict[str, list[str]] = {}
    with transaction.atomic(savepoint=False):
        pairs = Alert.objects.filter(
            pk__in=alert_ids, incident__isnull=False
        ).values_list("alert_id", "incident_id")
        order = {alert_id: index for index, alert_id in enumerate(alert_ids)}
        for alert_id, incident_id in sorted(pairs, key=lambda p: order[p[0]]):
            by_incident.setdefault(incident_id, []).append(alert_id)
        if not by_incident:
            return []
        _ensure_roots(by_incident)
        pending = {
            message.incident_id: message
            for message in SlackMessage.objects.select_for_update()
            .filter(
                incident_id__in=list(by_incident),
                kind=kind,
                state=MessageState.PENDING,
            )
            .order_by("id")
        }
        later = _later_replies_by_incident(kind=kind, pending=pending)
        to_update, to_create = [], []
        for incident_id, ids in by_incident.items():
            message = pending.get(incident_id)
            if message is not None and later.get(incident_id, set()).intersection(ids):
                # One of these alerts is in a reply of the other kind queued
                # after the pending one (it fired there and resolves now, or
                # the reverse): folded in, this news would be posted before
                # that reply, so it waits in a new reply after it.
                message = None
            if message is None:
                to_create.append(
                    SlackMessage(
                        incident_id=incident_id,
                        kind=kind,
                        channel=settings.SLACK_CHANNEL_ID,
                        alert_ids=ids,
                    )
                )
                continue
            known = set(message.alert_ids)
            message.alert_ids = [
                *message.alert_ids,
                *(i for i in ids if i not in known),
            ]
            to_update.append(message)
        if to_update:
            SlackMessage.objects.bulk_update(to_update, ["alert_ids"])
        if to_create:
            SlackMessage.objects.bulk_create(to_create)
        _bump_roots(by_incident)
    return list(by_incident)


def _later_replies_by_incident(
    *, kind: str, pending: dict[str, SlackMessage]
) -> dict[str, set[str]]:
    """The alerts of each incident's unsent replies of the other coalesced
    kind that were queued after its pending reply of `kind`."""
    if not pending:
        return {}
    other = next(k for k in COALESCED_KINDS if k != kind)
    rows = (
        SlackMessage.objects.unsent()
        .filter(incident_id__in=list(pending), kind=other)
        .values_list("incident_id", "pk", "alert_ids")
    )
    later: dict[str, set[str]] = {}
    for incident_id, pk, alert_ids in rows:
        if pk > pending[incident_id].pk:
            later.setdefault(incident_id, set()).update(alert_ids)
    return later


def messages_record_analysis(*, alert_id: str, analysis_id: int) -> str | None:
    """Queue an Agent analysis as a reply in the alert's incident thread.

    Returns the incident id, or None when the alert has no incident. One reply
    per analysis, however often this is called.
    """
    with transaction.atomic(savepoint=False):
        row = (
            AlertAnalysis.objects.filter(pk=analysis_id)
            .values("incident_id", "alert__incident_id")
            .first()
        )
        if row is None:
            return None
        incident_id = row["alert__incident_id"] or row["incident_id"]
        if not incident_id:
            return None
        _ensure_roots([incident_id])
        SlackMessage.objects.bulk_create(
            [
                SlackMessage(
                    incident_id=incident_id,
                    kind=MessageKind.ANALYSIS,
                    channel=settings.SLACK_CHANNEL_ID,
                    alert_id=alert_id,
                    analysis_id=analysis_id,
                )
            ],
            ignore_conflicts=True,
        )
    return incident_id


def messages_record_summary(*, incident_id: str, generation: int) -> str:
    """Queue the final analysis of an incident as a reply in its thread.

    One reply per summary generation, however often this is called.
    """
    with transaction.atomic(savepoint=False):
        _ensure_roots([incident_id])
        SlackMessage.objects.bulk_create(
            [
                SlackMessage(
                    incident_id=incident_id,
                    kind=MessageKind.SUMMARY,
                    channel=settings.SLACK_CHANNEL_ID,
                    generation=generation,
                )
            ],
            ignore_conflicts=True,
        )
    return incident_id


# The error of a reply failed because its thread's root could not be posted.
ROOT_NOT_POSTED = "root message not posted"


def messages_retry(*, message_ids: list[int]) -> int:
    """Queue failed messages again; returns how many. Delivery starts on commit.

    Each gets a fresh round: no attempts yet, and GIVE_UP_AFTER counted from
    now (`tries_since`), or a message that failed over a day ago would be
    given up again at once, unposted. A root retried takes with it the replies
    that failed only because it was not posted.
    """
    from notifications.tasks import deliver_slack

    with transaction.atomic():
        failed = SlackMessage.objects.filter(
            pk__in=message_ids, state=MessageState.FAILED
        )
        roots = failed.roots().values_list("incident_id", flat=True)
        failed |= SlackMessage.objects.replies().filter(
            incident_id__in=roots,
            state=MessageState.FAILED,
            error__startswith=ROOT_NOT_POSTED,
        )
        incident_ids = sorted(set(failed.values_list("incident_id", flat=True)))
        count = failed.update(
            state=MessageState.PENDING,
            error="",
            attempts=0,
            next_attempt_at=None,
            tries_since=timezone.now(),
        )
        if incident_ids:
            transaction.on_commit(lambda: deliver_slack.enqueue(incident_ids))
    logger.info("slack messages queued again count=%s", count)
    return count


# Delivery (in the worker, outside any transaction).


class LeaseLost(Exception):
    """Another worker took this thread over (ours had expired)."""


@dataclass
class Delivery:
    """What one `thread_deliver` run did."""

    posted: int = 0
    edited: int = 0
    failed: int = 0
    busy: bool = False
    wait_until: datetime | None = None
    more: bool = False  # roots only: replies or edits are left for later


class _Thread:
    def __init__(
        self,
        incident_id: str,
        owner: str,
        client: SlackClient,
        *,
        roots_only: bool = False,
    ) -> None:
        self.roots_only = roots_only
        self.incident_id = incident_id
        self.owner = owner
        self.client = client
        self.result = Delivery()
        self.channel = ""

    def _root_qs(self):  # noqa: ANN202
        return SlackMessage.objects.roots().filter(incident_id=self.incident_id)

    def acquire(self) -> bool:
        now = timezone.now()
        return bool(
            self._root_qs()
            .filter(Q(lease_owner="") | Q(lease_expires_at__lt=now))
            .update(lease_owner=self.owner, lease_expires_at=now + LEASE)
        )

    def renew(self) -> None:
        renewed = (
            self._root_qs()
            .filter(lease_owner=self.owner)
            .update(lease_expires_at=timezone.now() + LEASE)
        )
        if not renewed:
            raise LeaseLost(self.incident_id)

    def release(self) -> None:
        self._root_qs().filter(lease_owner=self.owner).update(
            lease_owner="", lease_expires_at=None
        )

    def has_work(self) -> bool:
        root = self._root_qs().first()
        if root is None:
            return False
        return (
            root.edit_due
            or SlackMessage.objects.filter(
                incident_id=self.incident_id, state__in=[MessageState.PENDING]
            ).exists()
        )

    # One pass: returns when to come back, or None when nothing is left.
    def run(self) -> datetime | None:
        now = timezone.now()
        root = self._root_qs().get()
        if root.wake_at and root.wake_at <= now:
            self._root_qs().filter(wake_at__lte=now).update(wake_at=None)

        # Pacing is the configured channel's, whatever id Slack answered with
        # (SLACK_CHANNEL_ID may be a name) or the thread it is in.
        self.channel = settings.SLACK_CHANNEL_ID or root.channel
        if root.state in (MessageState.PENDING, MessageState.SENDING):
            if root.next_attempt_at and root.next_attempt_at > now:
                return root.next_attempt_at
            if turn := self._turn(root):
                return turn
            retry_at = self._post(root, root=None)
            if retry_at is not None:
                return retry_at
            root.refresh_from_db()
        if root.state == MessageState.FAILED:
            self._fail_replies(root)
            return None
        if self.roots_only:
            return None

        replies = list(
            SlackMessage.objects.replies()
            .unsent()
            .filter(incident_id=self.incident_id)
            .order_by("id")
        )
        if not replies and not root.edit_due:
            return None
        interval = settings.SLACK_THREAD_INTERVAL
        if root.last_round_at and root.last_round_at + interval > now:
            return root.last_round_at + interval

        if root.edit_due:
            if root.next_attempt_at and root.next_attempt_at > now:
                return root.next_attempt_at
            retry_at = self._edit(root)
            if retry_at is not None:
                return retry_at
        for reply in replies:
            if reply.next_attempt_at and reply.next_attempt_at > now:
                return reply.next_attempt_at
            if turn := self._turn(root):
                return turn
            retry_at = self._post(reply, root=root)
            if retry_at is not None:
                return retry_at
        self._root_qs().update(last_round_at=timezone.now())
        return None

    def _turn(self, root: SlackMessage) -> datetime | None:
        """This thread's turn to post in its channel: None to post now, else
        when to come back (the turn is kept on the root until then).

        A turn at most SLACK_CHANNEL_INTERVAL away is waited for here, which
        costs less than a task run later. Edits take no turn: Slack limits
        chat.update apart from posts.
        """
        now = timezone.now()
        held = root.turn_at
        if held is not None:
            if held > now:
                return held
            root.turn_at = None
            SlackMessage.objects.filter(pk=root.pk).update(turn_at=None)
            return None
        turn = channel_take_turn(channel=self.channel, now=now)
        if turn <= now:
            return None
        if turn - now <= settings.SLACK_CHANNEL_INTERVAL:
            self.renew()
            sleep((turn - now).total_seconds())
            return None
        root.turn_at = turn
        SlackMessage.objects.filter(pk=root.pk).update(turn_at=turn)
        return turn

    def _claim(self, message: SlackMessage) -> bool:
        self.renew()
        return bool(
            SlackMessage.objects.filter(
                pk=message.pk,
                state__in=[MessageState.PENDING, MessageState.SENDING],
            ).update(
                state=MessageState.SENDING,
                attempts=F("attempts") + 1,
                last_attempt_at=timezone.now(),
            )
        )

    def _post(
        self, message: SlackMessage, *, root: SlackMessage | None
    ) -> datetime | None:
        # Left "sending" by a worker that died or an answer that was lost:
        # Slack may have the post already.
        unsure = message.state == MessageState.SENDING
        if self._spent(message):
            return None
        if not self._claim(message):
            return None
        # Read after the claim: alerts folded in until then are in this post.
        message.refresh_from_db()
        payload = render_message(message)
        if payload is None:
            SlackMessage.objects.filter(pk=message.pk).update(
                state=MessageState.FAILED, error="nothing to post"
            )
            return None
        channel = root.channel if root is not None else message.channel
        thread_ts = root.ts if root is not None else ""
        ours = {"incident_id": self.incident_id, "message_id": message.pk}
        if unsure:
            try:
                found = self._earlier_post(message, channel, thread_ts, ours)
            except SlackError as exc:
                # A lookup's 429 is conversations.history's own limit (Slack's
                # tier 3), not the channel's message a second: posts go on.
                return self._failed(message, exc, unsure=True, paces=False)
            if found is not None:
                ts, posted = found
                revision = posted.get("revision")
                self._sent(
                    message,
                    ts=ts,
                    channel=channel,
                    thread_ts=thread_ts,
                    revision=revision if isinstance(revision, int) else 0,
                )
                return None
        if message.is_root:
            ours["revision"] = message.revision
        try:
            ts, channel = self.client.post_message(
                payload, channel=channel, thread_ts=thread_ts, metadata=ours
            )
        except SlackError as exc:
            return self._failed(message, exc, unsure=exc.maybe_done)
        self._sent(
            message,
            ts=ts,
            channel=channel,
            thread_ts=thread_ts,
            revision=message.revision,
        )
        return None

    def _spent(self, message: SlackMessage) -> bool:
        """Fail for good a message tried for GIVE_UP_AFTER already.

        Slack's errors end that way in _failed; this ends the rest, such as a
        worker that dies at every try of one message.
        """
        if message.post_tries_began > timezone.now() - GIVE_UP_AFTER:
            return False
        error = f"gave up after {message.attempts} attempts"
        failed = SlackMessage.objects.filter(
            pk=message.pk, state__in=[MessageState.PENDING, MessageState.SENDING]
        ).update(state=MessageState.FAILED, error=error, next_attempt_at=None)
        if failed:
            self._count_failure(message, message.kind, error)
        return True

    def _earlier_post(
        self,
        message: SlackMessage,
        channel: str,
        thread_ts: str,
        ours: dict[str, object],
    ) -> tuple[str, dict[str, object]] | None:
        """The post an earlier attempt at `message` made, if Slack has it.

        A lookup Slack refuses for good (a token without the history scopes,
        say) finds nothing: the message is posted again, at the risk of a
        second copy, rather than not at all.
        """
        self.renew()
        oldest = (message.created_at - LOOKUP_MARGIN).timestamp()
        try:
            found = self.client.find_post(
                channel=channel, thread_ts=thread_ts, oldest=oldest, match=ours
            )
        except SlackError as exc:
            if exc.transient:
                raise
            logger.warning(
                "slack lookup of an earlier attempt failed; posting again"
                " incident_id=%s message_id=%s error=%s",
                self.incident_id,
                message.pk,
                exc.code,
            )
            found = None
        # A lookup reads several pages, which can take longer than the lease;
        # a worker that took the thread over meanwhile posts it, not us.
        self.renew()
        if found is not None:
            logger.info(
                "slack post of an earlier attempt found incident_id=%s"
                " message_id=%s ts=%s",
                self.incident_id,
                message.pk,
                found[0],
            )
        return found

    def _sent(
        self,
        message: SlackMessage,
        *,
        ts: str,
        channel: str,
        thread_ts: str,
        revision: int,
    ) -> None:
        """Record the post; `revision` is the incident state a root shows."""
        now = timezone.now()
        SlackMessage.objects.filter(pk=message.pk).update(
            state=MessageState.SENT,
            ts=ts,
            channel=channel,
            thread_ts=thread_ts or ts,
            sent_at=now,
            error="",
            next_attempt_at=None,
            tries_since=None,
            posted_revision=revision,
        )
        self.result.posted += 1
        metrics.slack_messages.labels(kind=message.kind, outcome="sent").inc()
        if message.is_root:
            created = (
                Incident.objects.filter(pk=self.incident_id)
                .values_list("created_at", flat=True)
                .first()
            )
            if created is not None:
                metrics.webhook_to_slack_root.observe(
                    max(0.0, (now - created).total_seconds())
                )
            logger.info("slack root posted incident_id=%s ts=%s", self.incident_id, ts)
        else:
            covered = [*message.alert_ids]
            if message.alert_id:
                covered.append(message.alert_id)
            if covered:
                Alert.objects.filter(pk__in=covered).exclude(
                    thread_ts=thread_ts
                ).update(thread_ts=thread_ts)

    def _edit(self, root: SlackMessage) -> datetime | None:
        self.renew()
        revision = root.revision
        payload = render_message(root)
        if payload is None:
            return None
        try:
            self.client.update_message(payload, channel=root.channel, ts=root.ts)
        except SlackError as exc:
            if exc.transient:
                return self._failed(root, exc, kind="root_update")
            SlackMessage.objects.filter(pk=root.pk).update(
                posted_revision=revision,
                error=f"chat.update: {exc.code}",
                tries_since=None,
            )
            self.result.failed += 1
            metrics.slack_messages.labels(kind="root_update", outcome="failed").inc()
            logger.error(
                "slack root edit failed incident_id=%s error=%s",
                self.incident_id,
                exc.code,
            )
            return None
        SlackMessage.objects.filter(pk=root.pk).update(
            posted_revision=revision,
            error="",
            next_attempt_at=None,
            tries_since=None,
        )
        self.result.edited += 1
        metrics.slack_messages.labels(kind="root_update", outcome="sent").inc()
        return None

    def _failed(
        self,
        message: SlackMessage,
        exc: SlackError,
        *,
        kind: str = "",
        unsure: bool = False,
        paces: bool = True,
    ) -> datetime | None:
        """Record a failed call; a transient one is retried later.

        `unsure`: Slack may have the post. The row stays "sending", so that no
        alert is folded into what may be posted already, and the next attempt
        looks for the post first. `paces`: a 429 pauses the channel's posts.
        """
        kind = kind or message.kind
        now = timezone.now()
        rows = SlackMessage.objects.filter(pk=message.pk)
        edit = kind == "root_update"
        if edit:
            back_to = MessageState.SENT
        elif unsure:
            back_to = MessageState.SENDING
        else:
            back_to = MessageState.PENDING
        if paces and exc.retry_after is not None and self.channel:
            channel_pause(
                channel=self.channel,
                until=now
                + timedelta(seconds=min(exc.retry_after, RETRY_AFTER_CAP_SECONDS)),
            )
        # A root edit's tries run from its first failure, not the root's post.
        since = (message.tries_since or now) if edit else message.post_tries_began
        if exc.transient and since > now - GIVE_UP_AFTER:
            attempts = rows.values_list("attempts", flat=True).first() or 1
            retry_at = now + timedelta(seconds=retry_delay(attempts, exc.retry_after))
            changes: dict[str, Any] = {
                "state": back_to,
                "error": exc.code,
                "next_attempt_at": retry_at,
            }
            if edit:
                changes.update(
                    attempts=F("attempts") + 1, last_attempt_at=now, tries_since=since
                )
            rows.update(**changes)
            metrics.slack_messages.labels(kind=kind, outcome="retried").inc()
            logger.warning(
                "slack call failed, will retry incident_id=%s kind=%s error=%s"
                " retry_at=%s",
                self.incident_id,
                kind,
                exc.code,
                retry_at.isoformat(),
            )
            return retry_at
        error = exc.code if not exc.transient else f"gave up: {exc.code}"
        if edit:
            rows.update(posted_revision=message.revision, error=error, tries_since=None)
        else:
            rows.update(state=MessageState.FAILED, error=error, next_attempt_at=None)
        self._count_failure(message, kind, error)
        return None

    def _count_failure(self, message: SlackMessage, kind: str, error: str) -> None:
        """Count and log a message (or root edit) that failed for good."""
        self.result.failed += 1
        metrics.slack_messages.labels(kind=kind, outcome="failed").inc()
        logger.error(
            "slack message failed incident_id=%s kind=%s message_id=%s error=%s",
            self.incident_id,
            kind,
            message.pk,
            error,
        )

    def _fail_replies(self, root: SlackMessage) -> None:
        failed = (
            SlackMessage.objects.replies()
            .unsent()
            .filter(incident_id=self.incident_id)
            .update(
                state=MessageState.FAILED,
                error=f"{ROOT_NOT_POSTED}: {root.error}",
            )
        )
        if failed:
            self.result.failed += failed
            logger.error(
                "slack replies dropped, root failed incident_id=%s count=%s",
                self.incident_id,
                failed,
            )


# A 429 paces the channel for this long after it (SlackChannel).
PACED_FOR = timedelta(minutes=1)

# Unpaced, the turn is now whatever the row says: a worker whose clock runs
# ahead cannot hold the channel; paced, it holds it at most that much longer.
_TAKE_TURN = """
INSERT INTO notifications_slackchannel AS c (channel, next_turn_at)
VALUES (%(channel)s, %(now)s)
ON CONFLICT (channel) DO UPDATE
    SET next_turn_at = CASE
        WHEN c.paced_until > %(now)s
        THEN GREATEST(c.next_turn_at, %(now)s) + %(interval)s
        ELSE %(now)s END
RETURNING next_turn_at, paced_until
"""

_PAUSE = """
INSERT INTO notifications_slackchannel AS c (channel, next_turn_at, paced_until)
VALUES (%(channel)s, %(until)s, %(paced_until)s)
ON CONFLICT (channel) DO UPDATE
    SET next_turn_at = GREATEST(c.next_turn_at, EXCLUDED.next_turn_at),
        paced_until = GREATEST(c.paced_until, EXCLUDED.paced_until)
"""


def channel_take_turn(*, channel: str, now: datetime) -> datetime:
    """Take the channel's next turn for one post; returns its time, `now` or
    later. One statement, so concurrent workers each get their own turn."""
    interval = settings.SLACK_CHANNEL_INTERVAL
    with connection.cursor() as cursor:
        cursor.execute(
            _TAKE_TURN, {"channel": channel, "now": now, "interval": interval}
        )
        next_turn_at, paced_until = cursor.fetchone()
    if paced_until is not None and paced_until > now:
        return next_turn_at - interval
    return next_turn_at


def channel_pause(*, channel: str, until: datetime) -> None:
    """Slack answered 429: no turn before `until`, and paced turns after it."""
    with connection.cursor() as cursor:
        cursor.execute(
            _PAUSE,
            {"channel": channel, "until": until, "paced_until": until + PACED_FOR},
        )


def _schedule_wake(incident_id: str, at: datetime) -> bool:
    """Make sure a delivery task runs for the thread at `at`; True if enqueued."""
    from notifications.tasks import deliver_slack

    now = timezone.now()
    with transaction.atomic():
        claimed = (
            SlackMessage.objects.roots()
            .filter(incident_id=incident_id)
            .filter(Q(wake_at__isnull=True) | Q(wake_at__lt=now) | Q(wake_at__gt=at))
            .update(wake_at=at)
        )
        if claimed:
            transaction.on_commit(
                lambda: deliver_slack.using(run_after=at).enqueue([incident_id])
            )
    return bool(claimed)


def thread_deliver(
    *, incident_id: str, client: SlackClient | None = None, roots_only: bool = False
) -> Delivery:
    """Post what is due in one incident's thread, in order, each message once.

    With `roots_only`, post the root if it is due and stop; `more` then says
    whether replies or edits wait. Returns quietly (busy) when another worker
    holds the thread. When the
    thread must wait (pacing, a backoff, Retry-After), a task is enqueued for
    then. Raises only on unexpected errors; Slack errors are recorded on rows.
    """
    thread = _Thread(
        incident_id, uuid.uuid4().hex, client or slack_client(), roots_only=roots_only
    )
    for _ in range(MAX_PASSES):
        if not thread.acquire():
            thread.result.busy = True
            return thread.result
        try:
            wait_until = thread.run()
        except LeaseLost:
            logger.warning("slack thread lease lost incident_id=%s", incident_id)
            return thread.result
        except Exception:
            thread.release()
            raise
        thread.release()
        if roots_only:
            thread.result.more = wait_until is None and thread.has_work()
        if wait_until is not None:
            _schedule_wake(incident_id, wait_until)
            thread.result.wait_until = wait_until
            return thread.result
        # Rows recorded while we held the lease: their kick found us busy.
        if roots_only or not thread.has_work():
            return thread.result
    return thread.result


def threads_to_recover(*, now: datetime | None = None, limit: int = 500) -> list[str]:
    """Incidents with unsent Slack work that no task is coming for."""
    now = now or timezone.now()
    cutoff = now - RECOVER_AFTER
    # A wake or a retry later than a lease has lost its task.
    overdue = now - LEASE
    stuck_rows = SlackMessage.objects.unsent().filter(
        Q(next_attempt_at__isnull=True, created_at__lt=cutoff)
        | Q(next_attempt_at__lt=overdue)
    )
    stuck_edits = (
        SlackMessage.objects.roots()
        .filter(revision__gt=F("posted_revision"), state=MessageState.SENT)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=overdue))
    )
    unattended = (
        SlackMessage.objects.roots()
        .filter(Q(lease_owner="") | Q(lease_expires_at__lt=now))
        .filter(Q(wake_at__isnull=True) | Q(wake_at__lt=overdue))
    )
    # Ordered by the id alone: under the rows' own ordering DISTINCT would be
    # taken over the columns it orders by too, and one thread's many rows
    # could fill the limit, leaving every other lost thread for later.
    candidates = set(
        stuck_rows.order_by("incident_id")
        .values_list("incident_id", flat=True)
        .distinct()[:limit]
    ) | set(stuck_edits.values_list("incident_id", flat=True)[:limit])
    return sorted(
        unattended.filter(incident_id__in=candidates).values_list(
            "incident_id", flat=True
        )
    )
