"""The final analysis of an incident: body, storing, claims by generation."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connections, transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from alerts.analysis import AgentDisabled, analysis_request_incident
from alerts.analysis_tasks import (
    SUMMARY_LOCK_CLASS,
    recover_analyses,
    summarize_incident,
)
from alerts.models import AnalysisArtifact
from alerts.tests.factories import AlertAnalysisFactory, AlertFactory
from alerts.tests.fake_agent import (
    FakeAgent,
    point_settings_at,
    run_queued_tasks,
    serve_fake_agent,
)
from incidents import events
from incidents.models import ANALYSIS_MAX_CHARS, Incident
from incidents.services import IncidentNotFound, incident_reopen, incident_resolve
from incidents.tests.factories import IncidentFactory
from kuberca.testing.http import Reply

pytestmark = pytest.mark.django_db

SUMMARIZE = "/summarize-incident"
FIRED = datetime(2026, 12, 3, 16, 16, 36, 138228, tzinfo=UTC)


@pytest.fixture(scope="module")
def agent_server() -> Iterator[FakeAgent]:
    yield from serve_fake_agent()


@pytest.fixture
def agent(agent_server: FakeAgent, settings) -> FakeAgent:  # noqa: ANN001
    agent_server.reset()
    point_settings_at(settings, agent_server)
    return agent_server


@pytest.fixture
def summarized() -> Iterator[list[dict[str, Any]]]:
    """What incident_summarized was sent with, in order."""
    sent: list[dict[str, Any]] = []

    def record(sender: Any, **kwargs: Any) -> None:
        kwargs.pop("signal")
        sent.append(kwargs)

    events.incident_summarized.connect(record, dispatch_uid="test-summarized")
    yield sent
    events.incident_summarized.disconnect(dispatch_uid="test-summarized")


def resolved_incident(django_capture_on_commit_callbacks, **fields) -> Incident:  # noqa: ANN001
    incident = IncidentFactory(**fields)
    with django_capture_on_commit_callbacks(execute=True):
        incident_resolve(incident_id=incident.pk, resolved_by="oncall")
    incident.refresh_from_db()
    return incident


def queued_summaries() -> list[list[Any]]:
    return [
        t.args_kwargs["args"]
        for t in DBTaskResult.objects.filter(
            status="READY", task_path="alerts.analysis_tasks.summarize_incident"
        )
    ]


def test_resolving_an_incident_enqueues_its_final_analysis_after_commit(
    agent: FakeAgent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    incident = IncidentFactory()

    with django_capture_on_commit_callbacks() as callbacks:
        incident_resolve(incident_id=incident.pk, resolved_by="", automatic=True)
        assert queued_summaries() == []
    for callback in callbacks:
        callback()

    assert queued_summaries() == [[incident.pk, 1]]


def test_summary_body_carries_the_incident_and_each_alerts_latest_analysis(
    agent: FakeAgent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    incident = IncidentFactory(
        title="KubePodCrashLooping in shop", severity="critical", fired_at=FIRED
    )
    first = AlertFactory(
        incident=incident, fingerprint="aaaa", fired_at=FIRED, resolved=True
    )
    AlertFactory(
        incident=incident,
        fingerprint="bbbb",
        alarm_title="TargetDown",
        severity="critical",
        fired_at=FIRED + timedelta(seconds=1),
        analysis_summary="copied",
    )
    AlertFactory(incident=incident, is_enabled=False)
    AlertAnalysisFactory(alert=first, summary="firing one")
    latest = AlertAnalysisFactory(
        alert=first, status="resolved", summary="resolved one", detail="why"
    )
    AlertAnalysisFactory(
        alert=first, status="resolved", trigger="manual", state="failed", summary="x"
    )
    AnalysisArtifact.objects.create(
        analysis=latest,
        artifact_type="logs",
        query="{pod='cart-0'}",
        result=["OOMKilled"],
        summary="oom",
    )
    with django_capture_on_commit_callbacks(execute=True):
        incident_resolve(
            incident_id=incident.pk,
            resolved_by="oncall",
            at=FIRED + timedelta(minutes=5),
        )

    assert run_queued_tasks() == [("summarize_incident", "done")]

    assert agent.invalid == []
    (body,) = agent.bodies(SUMMARIZE)
    assert body == {
        "incident_id": incident.pk,
        "title": "KubePodCrashLooping in shop",
        "severity": "critical",
        "fired_at": "2026-12-03T16:16:36Z",
        "resolved_at": "2026-12-03T16:21:36Z",
        "alerts": [
            {
                "fingerprint": "aaaa",
                "alert_name": "KubePodCrashLooping",
                "severity": "warning",
                "status": "resolved",
                "analysis_summary": "resolved one",
                "analysis_detail": "why",
                "artifacts": [
                    {
                        "type": "logs",
                        "query": "{pod='cart-0'}",
                        "result": ["OOMKilled"],
                        "summary": "oom",
                    }
                ],
            },
            {
                "fingerprint": "bbbb",
                "alert_name": "TargetDown",
                "severity": "critical",
                "status": "firing",
                "analysis_summary": "copied",
                "analysis_detail": "",
                "artifacts": [],
            },
        ],
        "language": "en",
    }


def test_summary_body_asks_for_korean_when_language_is_ko(
    agent: FakeAgent, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    settings.LANGUAGE = "ko"
    resolved_incident(django_capture_on_commit_callbacks)

    assert run_queued_tasks() == [("summarize_incident", "done")]

    (body,) = agent.bodies(SUMMARIZE)
    assert body["language"] == "ko"
    assert agent.invalid == []


def test_summary_body_times_before_year_1000_keep_four_digit_years(
    agent: FakeAgent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    resolved_incident(
        django_capture_on_commit_callbacks,
        fired_at=datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC),
    )

    run_queued_tasks()

    (body,) = agent.bodies(SUMMARIZE)
    assert body["fired_at"] == "0999-01-02T03:04:05Z"
    assert agent.invalid == []


def test_summary_is_stored_and_announced(
    agent: FakeAgent, summarized: list, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    incident = resolved_incident(django_capture_on_commit_callbacks)

    run_queued_tasks()

    incident.refresh_from_db()
    assert incident.analysis_summary == f"Final summary of {incident.pk}"
    assert incident.analysis_detail == "0 alerts analysed"
    assert incident.title == "Cart pods crash-looping after a bad deploy"
    assert (incident.summary_status, incident.summary_error) == ("done", "")
    assert summarized == [{"incident_id": incident.pk, "generation": 1}]


@pytest.mark.parametrize("title", ["", "   "])
def test_an_empty_title_from_the_agent_keeps_the_incident_title(
    agent: FakeAgent, django_capture_on_commit_callbacks, title: str
) -> None:  # noqa: ANN001
    agent.summary_title = title
    incident = resolved_incident(django_capture_on_commit_callbacks, title="Mine")

    run_queued_tasks()

    incident.refresh_from_db()
    assert incident.title == "Mine"
    assert incident.summary_status == "done"


def test_summarize_run_twice_calls_the_agent_once(
    agent: FakeAgent, summarized: list, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    incident = resolved_incident(django_capture_on_commit_callbacks)

    assert summarize_incident.call(incident.pk, 1) == "done"
    assert summarize_incident.call(incident.pk, 1) == "skipped"

    assert len(agent.bodies(SUMMARIZE)) == 1
    assert len(summarized) == 1


def test_a_second_worker_holding_the_claim_makes_the_run_step_aside(
    agent: FakeAgent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    import zlib

    incident = resolved_incident(django_capture_on_commit_callbacks)
    other = connections.create_connection("default")
    key = zlib.crc32(incident.pk.encode()) - 2**31
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", [SUMMARY_LOCK_CLASS, key])

        assert summarize_incident.call(incident.pk, 1) == "busy"
    finally:
        other.close()

    assert agent.bodies(SUMMARIZE) == []
    assert [incident.pk, 1, 1, 1] in queued_summaries()
    outcomes = [v for _, v in run_queued_tasks()]
    assert outcomes == ["done", "skipped"]
    assert len(agent.bodies(SUMMARIZE)) == 1


def test_a_reopened_and_re_resolved_incident_is_summarised_again(
    agent: FakeAgent, summarized: list, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    incident = resolved_incident(django_capture_on_commit_callbacks)
    run_queued_tasks()

    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            incident_reopen(incident=Incident.objects.select_for_update().get())
        incident_resolve(incident_id=incident.pk, resolved_by="", automatic=True)
    run_queued_tasks()

    assert [s["generation"] for s in summarized] == [1, 2]
    assert len(agent.bodies(SUMMARIZE)) == 2


def test_a_task_of_an_older_generation_does_nothing(
    agent: FakeAgent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    incident = resolved_incident(django_capture_on_commit_callbacks)
    Incident.objects.filter(pk=incident.pk).update(summary_generation=2)

    assert summarize_incident.call(incident.pk, 1) == "skipped"
    assert agent.bodies(SUMMARIZE) == []


def test_a_bad_request_fails_the_summary_with_its_reason(
    agent: FakeAgent, django_capture_on_commit_callbacks, summarized: list
) -> None:  # noqa: ANN001
    agent.then(SUMMARIZE, "bad_request")
    incident = resolved_incident(django_capture_on_commit_callbacks)

    assert run_queued_tasks() == [("summarize_incident", "failed")]

    incident.refresh_from_db()
    assert incident.summary_status == "failed"
    assert incident.summary_error.startswith("HTTP 400")
    assert summarized == []


def test_a_malformed_summary_is_recorded_and_not_retried(
    agent: FakeAgent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    agent.then(SUMMARIZE, Reply(200, {"status": "success", "title": "t"}))
    incident = resolved_incident(django_capture_on_commit_callbacks, title="Mine")

    assert run_queued_tasks() == [("summarize_incident", "failed")]

    incident.refresh_from_db()
    assert incident.summary_error == "malformed response: no summary text"
    assert incident.title == "Mine"


def test_a_summary_with_only_a_detail_keeps_the_detail_as_its_summary(
    agent: FakeAgent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    # The answer is accepted; with an empty summary there would be nothing to
    # post in Slack (the reply fails "nothing to post") and nothing to embed.
    agent.then(
        SUMMARIZE,
        Reply(200, {"status": "success", "summary": " ", "detail": "OOM in cart"}),
    )
    incident = resolved_incident(django_capture_on_commit_callbacks)

    assert run_queued_tasks() == [("summarize_incident", "done")]

    incident.refresh_from_db()
    assert incident.analysis_summary == "OOM in cart"
    assert incident.analysis_detail == "OOM in cart"


def test_a_summary_holding_nul_characters_is_stored(
    agent: FakeAgent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    agent.then(
        SUMMARIZE,
        Reply(200, {"title": "T\u0000", "summary": "s\u0000", "detail": "d\u0000"}),
    )
    incident = resolved_incident(django_capture_on_commit_callbacks)

    assert run_queued_tasks() == [("summarize_incident", "done")]

    incident.refresh_from_db()
    assert (incident.title, incident.analysis_summary, incident.analysis_detail) == (
        "T\ufffd",
        "s\ufffd",
        "d\ufffd",
    )


def test_a_summary_too_long_for_the_search_index_is_cut_and_stored(
    agent: FakeAgent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    # Different words, so the full-text vector of the whole would pass 1 MB.
    words = " ".join(f"w{n:06d}x" for n in range(150_000))
    agent.then(
        SUMMARIZE,
        Reply(
            200,
            {"status": "success", "title": "", "summary": words, "detail": words},
        ),
    )
    incident = resolved_incident(django_capture_on_commit_callbacks)

    assert run_queued_tasks() == [("summarize_incident", "done")]

    incident.refresh_from_db()
    assert incident.analysis_summary == words[:ANALYSIS_MAX_CHARS]
    assert incident.analysis_detail == words[:ANALYSIS_MAX_CHARS]


def test_a_failing_agent_is_retried_then_the_summary_is_stored(
    agent: FakeAgent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    agent.then(SUMMARIZE, "server_error", "server_error")
    incident = resolved_incident(django_capture_on_commit_callbacks)

    outcomes = [v for _, v in run_queued_tasks()]

    assert outcomes == ["retrying", "retrying", "done"]
    incident.refresh_from_db()
    assert incident.summary_status == "done"


def test_the_summary_gives_up_after_the_maximum_attempts(
    agent: FakeAgent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    agent.then(SUMMARIZE, *["server_error"] * 4)
    incident = resolved_incident(django_capture_on_commit_callbacks)

    outcomes = [v for _, v in run_queued_tasks()]

    assert outcomes == ["retrying", "retrying", "failed"]
    incident.refresh_from_db()
    assert incident.summary_status == "failed"
    assert incident.summary_error == "gave up after 3 attempts: HTTP 500"


def test_a_summary_failed_for_want_of_the_agent_is_asked_for_again(
    agent: FakeAgent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    agent.then(SUMMARIZE, *["server_error"] * 3)
    incident = resolved_incident(django_capture_on_commit_callbacks)
    run_queued_tasks()
    incident.refresh_from_db()
    assert (incident.summary_status, incident.summary_transient_failure) == (
        "failed",
        True,
    )

    assert recover_analyses.call()["outage"] == 0
    Incident.objects.filter(pk=incident.pk).update(
        updated_at=timezone.now() - timedelta(minutes=11)
    )
    assert recover_analyses.call()["outage"] == 1
    assert queued_summaries() == [[incident.pk, incident.summary_generation]]
    run_queued_tasks()  # the Agent is back
    incident.refresh_from_db()
    assert incident.summary_status == "done"
    assert incident.summary_transient_failure is False


def test_a_summary_the_agent_refused_is_not_asked_for_again(
    agent: FakeAgent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    agent.then(SUMMARIZE, "bad_request")
    incident = resolved_incident(django_capture_on_commit_callbacks)
    run_queued_tasks()
    Incident.objects.filter(pk=incident.pk).update(
        updated_at=timezone.now() - timedelta(minutes=30)
    )
    incident.refresh_from_db()
    assert (incident.summary_status, incident.summary_transient_failure) == (
        "failed",
        False,
    )
    assert recover_analyses.call()["outage"] == 0
    assert queued_summaries() == []


def test_the_summary_waits_for_the_analyses_of_its_alerts(
    agent: FakeAgent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    incident = IncidentFactory()
    alert = AlertFactory(incident=incident, resolved=True)
    AlertAnalysisFactory(alert=alert)
    with django_capture_on_commit_callbacks(execute=True):
        from alerts import events as alert_events

        alert_events.alerts_resolved.send(
            sender=None, alert_ids=[alert.pk], stale=False
        )
        incident_resolve(incident_id=incident.pk, resolved_by="", automatic=True)

    assert summarize_incident.call(incident.pk, 1) == "waiting"
    run_queued_tasks()

    (body,) = agent.bodies(SUMMARIZE)
    assert body["alerts"][0]["analysis_summary"] == (
        f"resolved summary of {alert.fingerprint}"
    )


def test_a_person_can_ask_for_the_final_analysis_again(
    agent: FakeAgent, summarized: list, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    incident = resolved_incident(django_capture_on_commit_callbacks)
    run_queued_tasks()

    with django_capture_on_commit_callbacks(execute=True):
        events.incident_analysis_requested.send(
            sender=Incident, incident_id=incident.pk
        )
    incident.refresh_from_db()
    assert (incident.summary_generation, incident.summary_status) == (2, "pending")
    run_queued_tasks()

    assert [s["generation"] for s in summarized] == [1, 2]
    assert len(agent.bodies(SUMMARIZE)) == 2


def test_a_firing_incident_can_be_summarised_on_request(
    agent: FakeAgent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    incident = IncidentFactory()

    with django_capture_on_commit_callbacks(execute=True):
        assert analysis_request_incident(incident.pk) == 1
    run_queued_tasks()

    assert agent.invalid == []
    assert agent.bodies(SUMMARIZE)[0]["resolved_at"] == ""
    incident.refresh_from_db()
    assert incident.summary_status == "done"


def test_asking_again_rejects_an_unknown_incident(agent: FakeAgent) -> None:
    with pytest.raises(IncidentNotFound):
        analysis_request_incident("INC-missing")


def test_asking_again_rejects_when_the_agent_is_off(settings) -> None:  # noqa: ANN001
    settings.AGENT_ENABLED = False

    with pytest.raises(AgentDisabled):
        analysis_request_incident(IncidentFactory().pk)


def test_with_the_agent_off_a_resolve_leaves_nothing_pending(
    settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    settings.AGENT_ENABLED = False

    incident = resolved_incident(django_capture_on_commit_callbacks)

    assert incident.summary_status == ""
    assert queued_summaries() == []


def test_recover_requeues_a_summary_whose_task_was_lost(
    agent: FakeAgent, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    settings.AGENT_TIMEOUT_SECONDS = 60
    lost = IncidentFactory(status="resolved", summary_generation=3)
    recent = IncidentFactory(status="resolved", summary_generation=1)
    Incident.objects.filter(pk__in=[lost.pk, recent.pk]).update(
        summary_status="pending"
    )
    Incident.objects.filter(pk=lost.pk).update(
        updated_at=timezone.now() - timedelta(minutes=4)
    )

    assert recover_analyses.call()["summaries"] == 1
    assert recover_analyses.call()["summaries"] == 0

    assert queued_summaries() == [[lost.pk, 3, 1]]
    run_queued_tasks()
    lost.refresh_from_db()
    assert lost.summary_status == "done"


def _lost_mid_call(attempts: int) -> Incident:
    """A resolved incident whose summary task died during its attempt."""
    incident = IncidentFactory(status="resolved", resolved_at=timezone.now())
    Incident.objects.filter(pk=incident.pk).update(
        summary_status="pending",
        summary_generation=1,
        summary_attempts=attempts,
        updated_at=timezone.now() - timedelta(minutes=4),
    )
    return incident


def test_a_summary_recovered_after_a_lost_worker_keeps_counting_attempts(
    agent: FakeAgent, settings
) -> None:  # noqa: ANN001
    settings.AGENT_TIMEOUT_SECONDS = 60
    agent.then(SUMMARIZE, "server_error")
    incident = _lost_mid_call(attempts=1)

    assert recover_analyses.call()["summaries"] == 1
    assert queued_summaries() == [[incident.pk, 1, 2]]
    outcomes = [v for _, v in run_queued_tasks()]

    # Attempt 2 failed, attempt 3 (the last) succeeded.
    assert outcomes == ["retrying", "done"]
    incident.refresh_from_db()
    assert (incident.summary_status, incident.summary_attempts) == ("done", 3)


def test_a_summary_whose_every_attempt_lost_its_worker_fails_for_now(
    agent: FakeAgent, settings
) -> None:  # noqa: ANN001
    settings.AGENT_TIMEOUT_SECONDS = 60
    incident = _lost_mid_call(attempts=3)

    assert recover_analyses.call()["summaries"] == 0
    assert queued_summaries() == []
    incident.refresh_from_db()
    assert incident.summary_status == "failed"
    assert incident.summary_error == "gave up after 3 attempts: worker lost"
    assert incident.summary_transient_failure is True

    # Its outage round starts counting again from the first attempt.
    Incident.objects.filter(pk=incident.pk).update(
        updated_at=timezone.now() - timedelta(minutes=11)
    )
    assert recover_analyses.call()["outage"] == 1
    incident.refresh_from_db()
    assert (incident.summary_status, incident.summary_attempts) == ("pending", 0)
    run_queued_tasks()
    incident.refresh_from_db()
    assert (incident.summary_status, incident.summary_attempts) == ("done", 1)


def test_a_new_generation_counts_its_attempts_from_zero(
    agent: FakeAgent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    agent.then(SUMMARIZE, "server_error")
    incident = resolved_incident(django_capture_on_commit_callbacks)
    run_queued_tasks()
    incident.refresh_from_db()
    assert (incident.summary_status, incident.summary_attempts) == ("done", 2)

    with django_capture_on_commit_callbacks(execute=True):
        analysis_request_incident(incident.pk)
    incident.refresh_from_db()
    assert (incident.summary_generation, incident.summary_attempts) == (2, 0)
