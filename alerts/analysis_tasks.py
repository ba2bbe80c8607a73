"""Background work with the Agent: alert analyses, final incident analyses.

Tasks take ids, claim their row before calling the Agent (outside any
transaction), store the answer with a conditional write, retry transient
failures by re-enqueueing themselves with backoff, and record permanent ones.
`recover_analyses` (periodic) re-enqueues what a killed worker left behind.
"""

import logging
import random
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import F
from django.utils import timezone
from django_tasks import task
from django_tasks.base import Task

from alerts import analysis as services
from alerts.agent import ANALYZE, SUMMARIZE, AgentRejected, AgentTransient, get_client
from alerts.models import AlertAnalysis, AnalysisState, AnalysisStatus
from incidents.models import Incident, SummaryStatus
from kuberca import metrics, tasking

logger = logging.getLogger(__name__)

RETRY_BASE_SECONDS = settings.AGENT_RETRY_BACKOFF.total_seconds()
RETRY_CAP_SECONDS = settings.AGENT_RETRY_BACKOFF_CAP.total_seconds()
# A resolved analysis waits for the firing one, so it can send it along; a
# final analysis waits for its alerts' analyses. Both wait this long at most.
WAIT_STEP_SECONDS = 15.0
MAX_WAITS = 20
# Recovery: a pending row untouched this long has lost its task; a running one
# older than the Agent timeout plus this margin has lost its worker.
PENDING_LEASE: timedelta = settings.AGENT_RECOVER_AFTER
RUNNING_MARGIN: timedelta = settings.AGENT_RUNNING_MARGIN
RECOVER_BATCH = 100
# pg advisory lock namespace of final analyses (two int4 keys).
SUMMARY_LOCK_CLASS = 0x6B72


def retry_delay(attempt: int) -> timedelta:
    """Exponential backoff after failed attempt `attempt` (1-based), jittered."""
    ceiling = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** (attempt - 1))
    return timedelta(seconds=ceiling * random.uniform(0.5, 1.0))  # noqa: S311


def _enqueue_later(the_task: Task, delay: timedelta, *args: Any) -> bool:
    """Enqueue `the_task` to run after `delay`; False if the backend cannot."""
    if not the_task.get_backend().supports_defer:
        return False
    tasking.enqueue(the_task.using(run_after=timezone.now() + delay), *args)
    return True


def _running_lease() -> timedelta:
    return timedelta(seconds=float(settings.AGENT_TIMEOUT_SECONDS)) + RUNNING_MARGIN


def _max_attempts() -> int:
    return int(settings.AGENT_RETRY_MAX_ATTEMPTS)


def _gave_up(attempts: int, why: str) -> str:
    """The stored reason of an analysis whose attempts are spent."""
    return f"gave up after {attempts} attempts: {why}"


# What ended the last attempt when recovery finds its worker gone.
WORKER_LOST = "worker lost"


def _final_failure(
    endpoint: str, error: AgentRejected | AgentTransient, attempt: int
) -> str | None:
    """Count a failed Agent call; the reason to store when it is final, else None.

    A 4xx or malformed answer is final at once; a transient failure is final
    only on the last allowed attempt, otherwise the caller retries.
    """
    if isinstance(error, AgentRejected):
        reason = error.reason
    elif attempt >= _max_attempts():
        reason = _gave_up(attempt, error.reason)
    else:
        metrics.agent_calls.labels(endpoint=endpoint, outcome="retried").inc()
        return None
    metrics.agent_calls.labels(endpoint=endpoint, outcome="failed").inc()
    return reason


def _firing_unfinished(analysis: AlertAnalysis) -> bool:
    return AlertAnalysis.objects.filter(
        alert_id=analysis.alert_id,
        status=AnalysisStatus.FIRING,
        state__in=services.UNFINISHED,
    ).exists()


@task()
@tasking.with_request_id
def analyze_alert(analysis_id: int, waits: int = 0) -> str:
    """Run one alert analysis with the Agent and store it; return the outcome.

    Quietly does nothing unless the row is pending. Claims it (pending to
    running, attempts + 1) before the call; a 5xx, connection failure or
    timeout hands it back and re-enqueues with backoff until
    AGENT_RETRY_MAX_ATTEMPTS; a 4xx or malformed answer fails it for good.
    """
    if not services.agent_enabled():
        services.analysis_fail(
            analysis_id=analysis_id, attempt=None, reason="agent disabled"
        )
        return "disabled"
    analysis = AlertAnalysis.objects.select_related("alert").filter(pk=analysis_id)
    analysis = analysis.first()
    if analysis is None or analysis.state != AnalysisState.PENDING:
        return "skipped"
    if analysis.attempts >= _max_attempts():
        services.analysis_fail(
            analysis_id=analysis_id,
            attempt=None,
            reason=_gave_up(analysis.attempts, analysis.error),
            transient=True,
        )
        return "failed"
    if (
        analysis.status == AnalysisStatus.RESOLVED
        and waits < MAX_WAITS
        and _firing_unfinished(analysis)
        and _enqueue_later(
            analyze_alert, timedelta(seconds=WAIT_STEP_SECONDS), analysis_id, waits + 1
        )
    ):
        AlertAnalysis.objects.filter(pk=analysis_id).update(updated_at=timezone.now())
        logger.info("alert analysis waits for firing analysis_id=%s", analysis_id)
        return "waiting"

    claimed = AlertAnalysis.objects.filter(
        pk=analysis_id, state=AnalysisState.PENDING, attempts=analysis.attempts
    ).update(
        state=AnalysisState.RUNNING,
        attempts=F("attempts") + 1,
        updated_at=timezone.now(),
    )
    if not claimed:
        return "skipped"
    attempt = analysis.attempts + 1
    body = services.build_analyze_request(analysis)

    try:
        response = get_client().analyze(body)
    except (AgentRejected, AgentTransient) as exc:
        reason = _final_failure(ANALYZE, exc, attempt)
        if reason is not None:
            services.analysis_fail(
                analysis_id=analysis_id,
                attempt=attempt,
                reason=reason,
                transient=isinstance(exc, AgentTransient),
            )
            return "failed"
        logger.warning(
            "agent analyze failed, will retry analysis_id=%s attempt=%s reason=%s",
            analysis_id,
            attempt,
            exc.reason,
        )
        if services.analysis_release(
            analysis_id=analysis_id, attempt=attempt, reason=exc.reason
        ):
            # Without deferral support the row waits for recover_analyses.
            _enqueue_later(analyze_alert, retry_delay(attempt), analysis_id)
        return "retrying"

    metrics.agent_calls.labels(endpoint=ANALYZE, outcome="ok").inc()
    stored = services.analysis_store_result(
        analysis_id=analysis_id, attempt=attempt, response=response
    )
    return "done" if stored else "superseded"


@contextmanager
def _summary_lock(incident_id: str) -> Iterator[bool]:
    """Hold a session advisory lock on the incident's final analysis.

    The Agent call runs outside a transaction, so no row lock can cover it;
    this keeps two workers from calling at once, and it goes away with the
    connection if the worker dies.
    """
    key = zlib.crc32(incident_id.encode()) - 2**31
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [SUMMARY_LOCK_CLASS, key])
        locked = bool(cursor.fetchone()[0])
    try:
        yield locked
    finally:
        if locked:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_unlock(%s, %s)", [SUMMARY_LOCK_CLASS, key]
                )


def _owed(incident_id: str, generation: int) -> Incident | None:
    return Incident.objects.filter(
        pk=incident_id,
        summary_generation=generation,
        summary_status=SummaryStatus.PENDING,
    ).first()


def _alerts_analyzing(incident: Incident) -> bool:
    return AlertAnalysis.objects.filter(
        alert__incident=incident, state__in=services.UNFINISHED
    ).exists()


def _touch_incident(incident_id: str) -> None:
    # Keeps recover_analyses from re-enqueueing a summary that is being handled.
    Incident.objects.filter(pk=incident_id).update(updated_at=timezone.now())


@task()
@tasking.with_request_id
def summarize_incident(
    incident_id: str, generation: int, attempt: int = 1, waits: int = 0
) -> str:
    """Run the final analysis of `generation` and store it; return the outcome.

    Quietly does nothing once the generation moved on or was stored. Waits a
    little for its alerts' analyses to finish, so the Agent sees them. Retries
    transient failures with backoff until AGENT_RETRY_MAX_ATTEMPTS; a 4xx or a
    malformed answer marks the summary failed with the reason.
    """
    if not services.agent_enabled():
        services.summary_fail(
            incident_id=incident_id, generation=generation, reason="agent disabled"
        )
        return "disabled"
    incident = _owed(incident_id, generation)
    if incident is None:
        return "skipped"

    def look_again() -> bool:
        """Run again shortly, counting one more wait; False past MAX_WAITS."""
        return waits < MAX_WAITS and _enqueue_later(
            summarize_incident,
            timedelta(seconds=WAIT_STEP_SECONDS),
            incident_id,
            generation,
            attempt,
            waits + 1,
        )

    if waits < MAX_WAITS and _alerts_analyzing(incident) and look_again():
        _touch_incident(incident_id)
        logger.info(
            "incident summary waits for alert analyses incident_id=%s", incident_id
        )
        return "waiting"

    with _summary_lock(incident_id) as locked:
        if not locked:
            # Another run of this incident is calling the Agent: for an older
            # generation, whose answer will be discarded, or a duplicate of
            # this one. Look again shortly rather than leave it to recovery.
            look_again()
            return "busy"
        # Re-read under the lock: another worker may have stored it meanwhile.
        incident = _owed(incident_id, generation)
        if incident is None:
            return "skipped"
        body = services.build_summarize_request(incident)
        if not services.summary_begin_attempt(
            incident_id=incident_id, generation=generation, attempt=attempt
        ):
            return "skipped"
        try:
            response = get_client().summarize_incident(body)
        except (AgentRejected, AgentTransient) as exc:
            reason = _final_failure(SUMMARIZE, exc, attempt)
            if reason is not None:
                services.summary_fail(
                    incident_id=incident_id,
                    generation=generation,
                    reason=reason,
                    transient=isinstance(exc, AgentTransient),
                )
                return "failed"
            logger.warning(
                "agent summarize failed, will retry incident_id=%s attempt=%s "
                "reason=%s",
                incident_id,
                attempt,
                exc.reason,
            )
            _touch_incident(incident_id)
            _enqueue_later(
                summarize_incident,
                retry_delay(attempt),
                incident_id,
                generation,
                attempt + 1,
            )
            return "retrying"
        metrics.agent_calls.labels(endpoint=SUMMARIZE, outcome="ok").inc()
        stored = services.summary_store(
            incident_id=incident_id, generation=generation, response=response
        )
    return "done" if stored else "superseded"


def _recover_running(now: datetime) -> int:
    """Running rows past the lease lost their worker: back to pending, or
    failed when their attempts are spent."""
    recovered = 0
    stale = AlertAnalysis.objects.filter(
        state=AnalysisState.RUNNING, updated_at__lt=now - _running_lease()
    ).values_list("pk", "attempts", "updated_at")[:RECOVER_BATCH]
    for pk, attempts, updated_at in stale:
        same = AlertAnalysis.objects.filter(
            pk=pk, state=AnalysisState.RUNNING, attempts=attempts, updated_at=updated_at
        )
        if attempts >= _max_attempts():
            same.update(
                state=AnalysisState.FAILED,
                error=_gave_up(attempts, WORKER_LOST),
                transient_failure=True,
                completed_at=now,
                updated_at=now,
            )
            continue
        if same.update(state=AnalysisState.PENDING, updated_at=now):
            tasking.enqueue(analyze_alert, pk)
            recovered += 1
    return recovered


def _recover_pending(now: datetime) -> int:
    recovered = 0
    stale = AlertAnalysis.objects.filter(
        state=AnalysisState.PENDING, updated_at__lt=now - PENDING_LEASE
    ).values_list("pk", "updated_at")[:RECOVER_BATCH]
    for pk, updated_at in stale:
        # Touching the row makes the next run wait another lease.
        if AlertAnalysis.objects.filter(
            pk=pk, state=AnalysisState.PENDING, updated_at=updated_at
        ).update(updated_at=now):
            tasking.enqueue(analyze_alert, pk)
            recovered += 1
    return recovered


def _recover_summaries(now: datetime) -> int:
    recovered = 0
    # Index incident_summary_pending: the pending are few, however many incidents.
    stale = Incident.objects.filter(
        summary_status=SummaryStatus.PENDING, updated_at__lt=now - _running_lease()
    ).values_list("pk", "summary_generation", "summary_attempts", "updated_at")[
        :RECOVER_BATCH
    ]
    for pk, generation, attempts, updated_at in stale:
        same = Incident.objects.filter(
            pk=pk,
            summary_status=SummaryStatus.PENDING,
            summary_generation=generation,
            updated_at=updated_at,
        )
        if attempts >= _max_attempts():
            # Each of its attempts lost its worker: fail it like an outage, so
            # it gets a round later rather than a worker killed in a loop.
            same.update(
                summary_status=SummaryStatus.FAILED,
                summary_error=_gave_up(attempts, WORKER_LOST),
                summary_transient_failure=True,
                updated_at=now,
            )
            continue
        if same.update(updated_at=now):
            tasking.enqueue(summarize_incident, pk, generation, attempts + 1)
            recovered += 1
    return recovered


@task()
@tasking.with_request_id
def recover_analyses() -> dict[str, int]:
    """Re-enqueue analyses and final analyses whose task was lost, and the
    analyses that failed for want of the Agent (another round of attempts).

    Periodic (settings.PERIODIC_TASKS). Bounded batches; the claims in the
    tasks make a needless re-enqueue harmless.
    """
    now = timezone.now()
    counts = {
        "running": _recover_running(now),
        "pending": _recover_pending(now),
        "summaries": _recover_summaries(now),
        "outage": _recover_outage(now),
    }
    if any(counts.values()):
        logger.info(
            "analyses recovered running=%s pending=%s summaries=%s outage=%s",
            counts["running"],
            counts["pending"],
            counts["summaries"],
            counts["outage"],
        )
    return counts


def _recover_outage(now: datetime) -> int:
    analyses = services.analysis_retry_outage(now=now, limit=RECOVER_BATCH)
    for pk in analyses:
        tasking.enqueue(analyze_alert, pk)
    summaries = services.summary_retry_outage(now=now, limit=RECOVER_BATCH)
    for incident_id, generation in summaries:
        tasking.enqueue(summarize_incident, incident_id, generation)
    return len(analyses) + len(summaries)
