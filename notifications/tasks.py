"""Background tasks that talk to Slack, run by `manage.py db_worker`.

`deliver_slack` is kicked on commit by the receivers in notifications.signals
and re-enqueued (with run_after) when a thread must wait; `recover_slack` runs
every minute (settings.PERIODIC_TASKS) and re-enqueues threads whose task was
lost. Both are safe to run any number of times: the outbox rows are the truth.
"""

import logging

from django_tasks import task

from notifications import services
from notifications.slack import slack_client

logger = logging.getLogger(__name__)

RECOVER_BATCH = 50
# Kicks from receivers post roots first, ahead of replies and edits, so a new
# incident shows in Slack quickly even while other threads are busy.
ROOT_PRIORITY = 10


@task()
def deliver_slack(incident_ids: list[str], stage: str = "all") -> dict[str, int]:
    """Post what is due in each incident's thread (see services.thread_deliver).

    `stage="roots"` (the receivers' kick) posts only the roots that are due,
    then enqueues the rest at normal priority. An unexpected error in one
    thread does not stop the others; the first one is raised at the end, so
    the task shows as failed in the admin.
    """
    roots_only = stage == "roots"
    more: list[str] = []
    totals = {"posted": 0, "edited": 0, "failed": 0, "busy": 0, "waiting": 0}
    if not services.slack_enabled():
        return totals
    client = slack_client()
    first_error: Exception | None = None
    for incident_id in incident_ids:
        try:
            result = services.thread_deliver(
                incident_id=incident_id, client=client, roots_only=roots_only
            )
        except Exception as exc:
            logger.exception("slack delivery failed incident_id=%s", incident_id)
            first_error = first_error or exc
            continue
        totals["posted"] += result.posted
        totals["edited"] += result.edited
        totals["failed"] += result.failed
        totals["busy"] += int(result.busy)
        totals["waiting"] += int(result.wait_until is not None)
        if result.more:
            more.append(incident_id)
    if more:
        deliver_slack.enqueue(more)
    logger.info(
        "slack delivery done stage=%s incidents=%s posted=%s edited=%s failed=%s",
        stage,
        len(incident_ids),
        totals["posted"],
        totals["edited"],
        totals["failed"],
    )
    if first_error is not None:
        raise first_error
    return totals


@task()
def recover_slack() -> int:
    """Re-enqueue delivery for threads with unsent messages and no task coming.

    Finds rows left pending or half-sent by a lost task or a killed worker
    (older than a couple of minutes, their thread's lease expired); the claims
    in thread_deliver make a duplicate enqueue harmless.
    """
    if not services.slack_enabled():
        return 0
    incident_ids = services.threads_to_recover()
    for start in range(0, len(incident_ids), RECOVER_BATCH):
        deliver_slack.enqueue(incident_ids[start : start + RECOVER_BATCH])
    if incident_ids:
        logger.warning("slack threads recovered count=%s", len(incident_ids))
    return len(incident_ids)
