"""Receivers of the domain signals that tell Slack about incidents (SPEC §4).

Each one records the pending outbox rows in the transaction of the change and
kicks `deliver_slack` on commit; none calls Slack. They run inside ingestion,
so each costs a constant number of statements, whatever the number of alerts.
Without SLACK_BOT_TOKEN and SLACK_CHANNEL_ID they do nothing.
"""

import logging
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError, transaction

from notifications import services
from notifications.models import MessageKind

logger = logging.getLogger(__name__)

# incident_changed fields that the root message shows.
ROOT_FIELDS = {"status", "severity", "title", "alert_count"}


class _Kick:
    """The one on-commit enqueue of a transaction; later receivers add to it."""

    def __init__(self) -> None:
        self.incident_ids: set[str] = set()
        self.done = False

    def __call__(self) -> None:
        from notifications.tasks import ROOT_PRIORITY, deliver_slack

        self.done = True
        deliver_slack.using(priority=ROOT_PRIORITY).enqueue(
            sorted(self.incident_ids), stage="roots"
        )


def _kick(incident_ids: list[str]) -> None:
    """Enqueue delivery for these incidents when the transaction commits.

    Ingestion sends several signals per delivery; they share one task, so a
    webhook costs one enqueue (an atomic block's pending on-commit callbacks
    are looked at for ours: only one that would run at this commit is reused).
    """
    if not incident_ids:
        return
    connection = transaction.get_connection()
    if connection.in_atomic_block:
        for _sids, func, _robust in connection.run_on_commit:
            if isinstance(func, _Kick) and not func.done:
                func.incident_ids.update(incident_ids)
                return
    kick = _Kick()
    kick.incident_ids.update(incident_ids)
    transaction.on_commit(kick)


def _guarded(name: str, record: Callable[[], list[str]]) -> None:
    """Record and kick.

    A database error fails the write that signalled (the webhook answers 503
    and Alertmanager retries: nothing is lost); any other fault here is logged
    and must not cost the write itself.
    """
    if not services.slack_enabled():
        return
    try:
        incident_ids = record()
    except DatabaseError:
        raise
    except Exception:
        logger.exception("slack outbox record failed signal=%s", name)
        return
    _kick(incident_ids)


def on_incident_opened(sender: Any, incident_ids: list[str], **kwargs: Any) -> None:
    _guarded(
        "incident_opened",
        lambda: services.messages_record_root(incident_ids=list(incident_ids)),
    )


def on_incident_reopened(sender: Any, incident_id: str, **kwargs: Any) -> None:
    _guarded(
        "incident_reopened",
        lambda: services.messages_record_root(incident_ids=[incident_id]),
    )


def on_incident_changed(
    sender: Any, incident_id: str, fields: list[str] | None = None, **kwargs: Any
) -> None:
    if fields is not None and not ROOT_FIELDS.intersection(fields):
        return
    _guarded(
        "incident_changed",
        lambda: services.messages_record_incident_change(incident_ids=[incident_id]),
    )


def on_alerts_fired(sender: Any, alert_ids: list[str], **kwargs: Any) -> None:
    _guarded(
        "alerts_fired",
        lambda: services.messages_record_alerts(
            kind=MessageKind.ALERT_FIRING, alert_ids=list(alert_ids)
        ),
    )


def on_alerts_resolved(sender: Any, alert_ids: list[str], **kwargs: Any) -> None:
    _guarded(
        "alerts_resolved",
        lambda: services.messages_record_alerts(
            kind=MessageKind.ALERT_RESOLVED, alert_ids=list(alert_ids)
        ),
    )


def on_alerts_moved(
    sender: Any, alert_ids: list[str], incident_id: str, **kwargs: Any
) -> None:
    # The incidents the alerts left are edited through their incident_changed
    # (alert_count), which alert_move and incident_merge send for them.
    def record() -> list[str]:
        services.messages_record_root(incident_ids=[incident_id])
        return services.messages_record_incident_change(incident_ids=[incident_id])

    _guarded("alerts_moved", record)


def on_alert_analyzed(
    sender: Any, alert_id: str, analysis_id: int, **kwargs: Any
) -> None:
    def record() -> list[str]:
        incident_id = services.messages_record_analysis(
            alert_id=alert_id, analysis_id=analysis_id
        )
        return [incident_id] if incident_id else []

    _guarded("alert_analyzed", record)


def on_incident_summarized(
    sender: Any, incident_id: str, generation: int = 0, **kwargs: Any
) -> None:
    _guarded(
        "incident_summarized",
        lambda: [
            services.messages_record_summary(
                incident_id=incident_id, generation=generation
            )
        ],
    )


def connect() -> None:
    from alerts import events as alert_events
    from incidents import events as incident_events

    uid = "notifications"
    incident_events.incident_opened.connect(on_incident_opened, dispatch_uid=uid)
    incident_events.incident_reopened.connect(on_incident_reopened, dispatch_uid=uid)
    incident_events.incident_changed.connect(on_incident_changed, dispatch_uid=uid)
    incident_events.incident_summarized.connect(
        on_incident_summarized, dispatch_uid=uid
    )
    alert_events.alerts_fired.connect(on_alerts_fired, dispatch_uid=uid)
    alert_events.alerts_resolved.connect(on_alerts_resolved, dispatch_uid=uid)
    alert_events.alerts_moved.connect(on_alerts_moved, dispatch_uid=uid)
    alert_events.alert_analyzed.connect(on_alert_analyzed, dispatch_uid=uid)
