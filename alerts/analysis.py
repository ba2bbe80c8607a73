"""Agent analyses of alerts and the final analysis of incidents (SPEC §5).

The rows are the truth: an AlertAnalysis `pending` row (one automatic one per
alert and status, by a unique constraint) and Incident.summary_status
`pending` at a summary_generation say that work is owed. The receivers of
alerts.signals, the API, the admin and the tasks of alerts.analysis_tasks all
go through these functions; each state change is conditional, so a retry, a
second worker or a recovered task never stores an answer twice.
"""

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from alerts import events
from alerts.agent import (
    AgentAlert,
    AnalyzeRequest,
    AnalyzeResponse,
    Artifact,
    PreviousAnalysis,
    SummarizeRequest,
    SummarizeResponse,
    SummaryAlert,
)
from alerts.models import (
    Alert,
    AlertAnalysis,
    AnalysisArtifact,
    AnalysisState,
    AnalysisStatus,
    AnalysisTrigger,
)
from alerts.services import AlertNotFound
from incidents import events as incident_events
from incidents.models import (
    ANALYSIS_MAX_CHARS,
    TITLE_MAX_CHARS,
    Incident,
    SummaryStatus,
)
from incidents.services import IncidentNotFound
from kuberca import tasking
from kuberca.errors import Disabled
from kuberca.timefmt import rfc3339
from kuberca.transactions import atomic_retrying

logger = logging.getLogger(__name__)

# Go's zero time: what Alertmanager sends as endsAt of an alert not ended.
NOT_ENDED = "0001-01-01T00:00:00Z"
UNFINISHED = (AnalysisState.PENDING, AnalysisState.RUNNING)
ERROR_MAX_CHARS = 2000


class AgentDisabled(Disabled):
    code = "agent disabled"
    default_message = "the Agent is not configured (AGENT_URL, AGENT_ENABLED)"


def agent_enabled() -> bool:
    return bool(settings.AGENT_ENABLED and settings.AGENT_URL)


def _agent_time(value: datetime | None) -> str:
    """RFC 3339 in UTC with `Z`, keeping sub-seconds as Alertmanager does."""
    if value is None:
        return NOT_ENDED
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _second_time(value: datetime | None) -> str:
    """`YYYY-MM-DDTHH:MM:SSZ`, the format of /summarize-incident; "" for none."""
    return rfc3339(value) or ""


def _on_commit_robust(func: Callable[..., None], *args: Any) -> None:
    """Call `func(*args)` after commit; a failure is logged, never raised.

    Not a functools.partial: Django logs a failed robust callback by its
    __qualname__, which a partial lacks, so the log call itself raised (a 500
    for a webhook whose alerts were stored, when the database went away just
    after the commit). recover_analyses enqueues what was missed.
    """

    def callback() -> None:
        func(*args)

    callback.__qualname__ = func.__qualname__
    transaction.on_commit(callback, robust=True)


def _enqueue_analyses(analysis_ids: list[int], request_id: str) -> None:
    from alerts.analysis_tasks import analyze_alert

    for analysis_id in analysis_ids:
        analyze_alert.enqueue(analysis_id, request_id=request_id)


def _enqueue_pending_auto(alert_ids: list[str], status: str, request_id: str) -> None:
    # Runs after commit: rows made by this transaction (or left pending, never
    # tried, by an earlier one) get their task. Rows in a retry backoff have
    # attempts > 0 and a task already waiting.
    pending = AlertAnalysis.objects.filter(
        alert_id__in=alert_ids,
        status=status,
        trigger=AnalysisTrigger.AUTO,
        state=AnalysisState.PENDING,
        attempts=0,
    ).values_list("pk", flat=True)
    _enqueue_analyses(list(pending), request_id)


def analysis_create_pending(*, alert_ids: list[str], status: str) -> None:
    """Owe one automatic analysis of each alert in `status`; enqueue at commit.

    Two statements whatever the number of alerts; an alert already analysed
    in that status keeps its row (the unique constraint ignores the repeat).
    Does nothing when the Agent is off.
    """
    if not alert_ids or not agent_enabled():
        return
    alerts = Alert.objects.filter(pk__in=alert_ids).values_list("pk", "incident_id")
    AlertAnalysis.objects.bulk_create(
        [
            AlertAnalysis(alert_id=pk, incident_id=incident_id, status=status)
            for pk, incident_id in alerts
        ],
        ignore_conflicts=True,
    )
    _on_commit_robust(
        _enqueue_pending_auto, list(alert_ids), status, tasking.current_request_id()
    )


def analysis_request_alert(alert_id: str) -> AlertAnalysis:
    """Ask the Agent again about an alert in its current status (trigger manual).

    Returns the new pending analysis, or the manual one already pending or
    running for that alert and status. Raises AlertNotFound, AgentDisabled.
    Enqueues analyze_alert at commit.
    """
    if not agent_enabled():
        raise AgentDisabled()
    # Retried after a conflict: the new row names the alert's incident,
    # which PostgreSQL checks at commit, so a merge or move holding that
    # incident while it waits for the alert this request holds deadlocks
    # with it; the request's second attempt waits for the move instead.
    analysis, created = atomic_retrying(
        lambda: _request_alert(alert_id), name="analysis_request_alert"
    )
    if created:
        logger.info(
            "alert analysis requested alert_id=%s analysis_id=%s",
            alert_id,
            analysis.pk,
        )
    return analysis


def _request_alert(alert_id: str) -> tuple[AlertAnalysis, bool]:
    try:
        alert = Alert.objects.select_for_update().get(pk=alert_id)
    except Alert.DoesNotExist:
        raise AlertNotFound(alert_id=alert_id) from None
    existing = (
        AlertAnalysis.objects.filter(
            alert=alert,
            status=alert.status,
            trigger=AnalysisTrigger.MANUAL,
            state__in=UNFINISHED,
        )
        .order_by("-id")
        .first()
    )
    if existing is not None:
        return existing, False
    analysis = AlertAnalysis.objects.create(
        alert=alert,
        incident_id=alert.incident_id,
        status=alert.status,
        trigger=AnalysisTrigger.MANUAL,
    )
    _on_commit_robust(_enqueue_analyses, [analysis.pk], tasking.current_request_id())
    return analysis, True


def _enqueue_summary(incident_id: str, generation: int, request_id: str) -> None:
    from alerts.analysis_tasks import summarize_incident

    summarize_incident.enqueue(incident_id, generation, request_id=request_id)


def summary_schedule(*, incident_id: str, generation: int) -> None:
    """Enqueue the final analysis of `generation` at commit.

    With the Agent off, the pending mark set by the resolve is cleared so the
    incident does not look analysed for ever.
    """
    if not agent_enabled():
        Incident.objects.filter(
            pk=incident_id,
            summary_generation=generation,
            summary_status=SummaryStatus.PENDING,
        ).update(summary_status=SummaryStatus.NONE)
        return
    _on_commit_robust(
        _enqueue_summary, incident_id, generation, tasking.current_request_id()
    )


def analysis_request_incident(incident_id: str) -> int:
    """Ask for the final analysis again, resolved or not; return the generation.

    Bumps summary_generation (a task of an older generation then does
    nothing) and marks it pending. Raises IncidentNotFound, AgentDisabled.
    Enqueues summarize_incident at commit.
    """
    if not agent_enabled():
        raise AgentDisabled()
    with transaction.atomic():
        bumped = Incident.objects.filter(pk=incident_id).update(
            summary_generation=F("summary_generation") + 1,
            summary_status=SummaryStatus.PENDING,
            summary_error="",
            summary_attempts=0,
            updated_at=timezone.now(),
        )
        if not bumped:
            raise IncidentNotFound(incident_id=incident_id)
        generation = (
            Incident.objects.filter(pk=incident_id)
            .values_list("summary_generation", flat=True)
            .get()
        )
        summary_schedule(incident_id=incident_id, generation=generation)
    logger.info(
        "incident analysis requested incident_id=%s generation=%s",
        incident_id,
        generation,
    )
    return generation


def previous_firing_analysis(alert_id: str) -> AlertAnalysis | None:
    """The latest finished firing analysis of the alert, auto or manual."""
    return (
        AlertAnalysis.objects.filter(
            alert_id=alert_id, status=AnalysisStatus.FIRING, state=AnalysisState.DONE
        )
        .order_by("-id")
        .first()
    )


def incident_thread_ts(incident_id: str | None) -> str:
    """The ts of the incident's posted Slack root message, "" when none.

    SlackMessage is looked up by name: notifications sits above this app,
    which never imports it.
    """
    if not incident_id:
        return ""
    try:
        messages = apps.get_model("notifications", "SlackMessage")
    except LookupError:
        return ""
    return (
        messages.objects.filter(incident_id=incident_id, kind="incident_root")
        .exclude(ts="")
        .values_list("ts", flat=True)
        .first()
        or ""
    )


def build_analyze_request(analysis: AlertAnalysis) -> AnalyzeRequest:
    """The /analyze body for `analysis` (its alert selected with it)."""
    alert = analysis.alert
    incident_id = alert.incident_id or analysis.incident_id or ""
    resolved = analysis.status == AnalysisStatus.RESOLVED
    ends_at = (
        _agent_time(alert.resolved_at or analysis.created_at) if resolved else NOT_ENDED
    )
    body = AnalyzeRequest(
        alert=AgentAlert(
            status=analysis.status,
            labels=alert.labels or {},
            annotations=alert.annotations or {},
            startsAt=_agent_time(alert.fired_at),
            endsAt=ends_at,
            generatorURL=alert.generator_url,
            fingerprint=alert.fingerprint,
        ),
        # The thread of the alert's current incident (SPEC §5.1): the alert's
        # own thread_ts lags behind it until its reply is posted, and still
        # names the old thread after a move.
        thread_ts=incident_thread_ts(incident_id),
        incident_id=incident_id,
        analysis_type=analysis.status,
        language=settings.LANGUAGE,
    )
    if resolved:
        previous = previous_firing_analysis(alert.pk)
        if previous is not None:
            body["previous_analysis"] = PreviousAnalysis(
                status=previous.status,
                summary=previous.summary,
                detail=previous.detail,
                created_at=_agent_time(previous.created_at),
            )
    return body


def analysis_store_result(
    *, analysis_id: int, attempt: int, response: AnalyzeResponse
) -> bool:
    """Store the Agent's answer for the run that claimed `attempt`.

    Returns False when that run no longer owns the row (recovered, finished).
    Copies summary and detail onto the alert unless a later analysis of it is
    already done, and sends alert_analyzed so Slack posts it.
    """
    # Retried after a conflict, as a lost answer would cost another call to
    # the Agent: the store holds the alert, and the Slack reply names its
    # incident (checked at commit), which a merge or move may hold while it
    # waits for the alert.
    analysis = atomic_retrying(
        lambda: _store_result(analysis_id, attempt, response),
        name=f"analysis_store_result analysis_id={analysis_id}",
    )
    if analysis is None:
        return False
    logger.info(
        "alert analysis stored analysis_id=%s alert_id=%s status=%s artifacts=%s",
        analysis.pk,
        analysis.alert_id,
        analysis.status,
        len(response["artifacts"]),
    )
    return True


def _store_result(
    analysis_id: int, attempt: int, response: AnalyzeResponse
) -> AlertAnalysis | None:
    text = response["analysis"]
    summary = response["analysis_summary"].strip() and response["analysis_summary"]
    detail = response["analysis_detail"].strip() and response["analysis_detail"]
    now = timezone.now()
    analysis = (
        AlertAnalysis.objects.select_for_update()
        .filter(pk=analysis_id, state=AnalysisState.RUNNING, attempts=attempt)
        .first()
    )
    if analysis is None:
        return None
    analysis.summary = summary or text
    analysis.detail = detail or text
    analysis.analysis = text
    analysis.context = response["context"]
    analysis.state = AnalysisState.DONE
    analysis.error = ""
    analysis.completed_at = now
    analysis.save(
        update_fields=[
            "summary",
            "detail",
            "analysis",
            "context",
            "state",
            "error",
            "completed_at",
            "updated_at",
        ]
    )
    AnalysisArtifact.objects.bulk_create(
        [
            AnalysisArtifact(
                analysis=analysis,
                artifact_type=artifact["type"][:64],
                query=artifact["query"],
                result=artifact["result"],
                summary=artifact["summary"],
            )
            for artifact in response["artifacts"]
        ]
    )
    newer_done = AlertAnalysis.objects.filter(
        alert_id=analysis.alert_id, state=AnalysisState.DONE, pk__gt=analysis.pk
    ).exists()
    if not newer_done:
        Alert.objects.filter(pk=analysis.alert_id).update(
            analysis_summary=analysis.summary,
            analysis_detail=analysis.detail,
            updated_at=now,
        )
    events.alert_analyzed.send(
        sender=AlertAnalysis,
        alert_id=analysis.alert_id,
        analysis_id=analysis.pk,
        status=analysis.status,
    )
    return analysis


def analysis_fail(
    *, analysis_id: int, attempt: int | None, reason: str, transient: bool = False
) -> bool:
    """Give up on an analysis, keeping the reason. `attempt` None: not claimed.

    `transient`: the Agent could not be reached or answered 5xx on every
    attempt; the row gets another round later (`analysis_retry_outage`).
    """
    rows = AlertAnalysis.objects.filter(pk=analysis_id)
    if attempt is None:
        rows = rows.filter(state=AnalysisState.PENDING)
    else:
        rows = rows.filter(state=AnalysisState.RUNNING, attempts=attempt)
    now = timezone.now()
    failed = rows.update(
        state=AnalysisState.FAILED,
        error=reason[:ERROR_MAX_CHARS],
        transient_failure=transient,
        completed_at=now,
        updated_at=now,
    )
    if failed:
        logger.warning(
            "alert analysis failed analysis_id=%s reason=%s", analysis_id, reason
        )
    return bool(failed)


def _outage_bounds(now: datetime) -> tuple[datetime, datetime] | None:
    """(failed before, younger than) for another round; None when it is off."""
    window = settings.AGENT_OUTAGE_RETRY_FOR
    if not window or not agent_enabled():
        return None
    return now - settings.AGENT_OUTAGE_RETRY_EVERY, now - window


def analysis_retry_outage(*, now: datetime, limit: int) -> list[int]:
    """Hand back to pending the analyses that failed for want of the Agent.

    Each row gets a fresh round of AGENT_RETRY_MAX_ATTEMPTS once
    AGENT_OUTAGE_RETRY_EVERY has passed since it failed, for as long as it is
    younger than AGENT_OUTAGE_RETRY_FOR: an Agent outage of any length up to
    that ends with every analysis asked for again. Returns their ids.
    """
    bounds = _outage_bounds(now)
    if bounds is None:
        return []
    failed_before, since = bounds
    due = AlertAnalysis.objects.filter(
        state=AnalysisState.FAILED,
        transient_failure=True,
        completed_at__lt=failed_before,
        created_at__gte=since,
    ).values_list("pk", "completed_at")[:limit]
    handed_back = []
    for pk, completed_at in due:
        if AlertAnalysis.objects.filter(
            pk=pk, state=AnalysisState.FAILED, completed_at=completed_at
        ).update(
            state=AnalysisState.PENDING,
            attempts=0,
            transient_failure=False,
            completed_at=None,
            updated_at=now,
        ):
            handed_back.append(pk)
    return handed_back


def analysis_release(*, analysis_id: int, attempt: int, reason: str) -> bool:
    """Hand a claimed analysis back to pending after a transient failure."""
    return bool(
        AlertAnalysis.objects.filter(
            pk=analysis_id, state=AnalysisState.RUNNING, attempts=attempt
        ).update(
            state=AnalysisState.PENDING,
            error=reason[:ERROR_MAX_CHARS],
            updated_at=timezone.now(),
        )
    )


def _artifact_body(artifact: AnalysisArtifact) -> Artifact:
    return Artifact(
        type=artifact.artifact_type,
        query=artifact.query,
        result=artifact.result,
        summary=artifact.summary,
    )


def build_summarize_request(incident: Incident) -> SummarizeRequest:
    """The /summarize-incident body: the incident and each visible alert with
    its latest finished analysis and that analysis's artifacts (3 queries)."""
    alerts = list(
        Alert.objects.filter(incident=incident, is_enabled=True).order_by(
            "fired_at", "alert_id"
        )
    )
    latest = {
        analysis.alert_id: analysis
        for analysis in AlertAnalysis.objects.filter(
            alert__in=alerts, state=AnalysisState.DONE
        )
        .order_by("alert_id", "-id")
        .distinct("alert_id")
        .prefetch_related("artifacts")
    }
    items: list[SummaryAlert] = []
    for alert in alerts:
        analysis = latest.get(alert.pk)
        items.append(
            SummaryAlert(
                fingerprint=alert.fingerprint,
                alert_name=alert.alarm_title,
                severity=alert.severity,
                status=alert.status,
                analysis_summary=analysis.summary
                if analysis
                else alert.analysis_summary,
                analysis_detail=analysis.detail if analysis else alert.analysis_detail,
                artifacts=[_artifact_body(a) for a in analysis.artifacts.all()]
                if analysis
                else [],
            )
        )
    return SummarizeRequest(
        incident_id=incident.pk,
        title=incident.title,
        severity=incident.severity,
        fired_at=_second_time(incident.fired_at),
        resolved_at=_second_time(incident.resolved_at),
        alerts=items,
        language=settings.LANGUAGE,
    )


def summary_begin_attempt(*, incident_id: str, generation: int, attempt: int) -> bool:
    """Count the Agent call about to be made for `generation`'s final analysis.

    Counted before the call, so recovery knows a lost worker's attempts.
    False when the generation moved on or is no longer pending.
    """
    return bool(
        Incident.objects.filter(
            pk=incident_id,
            summary_generation=generation,
            summary_status=SummaryStatus.PENDING,
        ).update(summary_attempts=attempt, updated_at=timezone.now())
    )


def summary_store(
    *, incident_id: str, generation: int, response: SummarizeResponse
) -> bool:
    """Store the final analysis of `generation` on the incident, once.

    Replaces the title only when the Agent gave a non-empty one. Sends
    incident_summarized (Slack posts it, embeddings embed it) and
    incident_changed when the title changed. False when the generation moved
    on or was already stored.
    """
    with transaction.atomic():
        incident = (
            Incident.objects.select_for_update(no_key=True)
            .filter(
                pk=incident_id,
                summary_generation=generation,
                summary_status=SummaryStatus.PENDING,
            )
            .first()
        )
        if incident is None:
            return False
        # An answer with only a detail keeps it as the summary too (as an
        # alert analysis does): the summary is what Slack posts and is embedded.
        summary = response["summary"].strip() and response["summary"]
        # Cut to what the full-text index can hold (a longer one could not be
        # stored at all); the Agent's texts are far shorter.
        incident.analysis_summary = (summary or response["detail"])[:ANALYSIS_MAX_CHARS]
        incident.analysis_detail = response["detail"][:ANALYSIS_MAX_CHARS]
        incident.summary_status = SummaryStatus.DONE
        incident.summary_error = ""
        fields = [
            "analysis_summary",
            "analysis_detail",
            "summary_status",
            "summary_error",
            "updated_at",
        ]
        title = response["title"].strip()[:TITLE_MAX_CHARS]
        title_changed = bool(title) and title != incident.title
        if title_changed:
            incident.title = title
            fields.append("title")
        incident.save(update_fields=fields)
        incident_events.incident_summarized.send(
            sender=Incident, incident_id=incident.pk, generation=generation
        )
        if title_changed:
            incident_events.incident_changed.send(
                sender=Incident, incident_id=incident.pk, fields=["title"]
            )
    logger.info(
        "incident summary stored incident_id=%s generation=%s title_changed=%s",
        incident_id,
        generation,
        title_changed,
    )
    return True


def summary_fail(
    *, incident_id: str, generation: int, reason: str, transient: bool = False
) -> bool:
    """Give up on the final analysis of `generation`, keeping the reason.

    `transient`: the Agent could not be reached or answered 5xx on every
    attempt; it is asked for again later (`summary_retry_outage`).
    """
    failed = Incident.objects.filter(
        pk=incident_id,
        summary_generation=generation,
        summary_status=SummaryStatus.PENDING,
    ).update(
        summary_status=SummaryStatus.FAILED,
        summary_error=reason[:ERROR_MAX_CHARS],
        summary_transient_failure=transient,
        updated_at=timezone.now(),
    )
    if failed:
        logger.warning(
            "incident summary failed incident_id=%s generation=%s reason=%s",
            incident_id,
            generation,
            reason,
        )
    return bool(failed)


def summary_retry_outage(*, now: datetime, limit: int) -> list[tuple[str, int]]:
    """Hand back to pending the final analyses that failed for want of the Agent.

    Like `analysis_retry_outage`, for resolved incidents: every
    AGENT_OUTAGE_RETRY_EVERY after the failure, while the incident resolved
    less than AGENT_OUTAGE_RETRY_FOR ago. Returns (incident id, generation).
    """
    bounds = _outage_bounds(now)
    if bounds is None:
        return []
    failed_before, since = bounds
    due = Incident.objects.filter(
        summary_status=SummaryStatus.FAILED,
        summary_transient_failure=True,
        updated_at__lt=failed_before,
        resolved_at__gte=since,
    ).values_list("pk", "summary_generation", "updated_at")[:limit]
    handed_back = []
    for pk, generation, updated_at in due:
        if Incident.objects.filter(
            pk=pk,
            summary_status=SummaryStatus.FAILED,
            summary_generation=generation,
            updated_at=updated_at,
        ).update(
            summary_status=SummaryStatus.PENDING,
            summary_transient_failure=False,
            summary_attempts=0,
            updated_at=now,
        ):
            handed_back.append((pk, generation))
    return handed_back
