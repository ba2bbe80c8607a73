"""Alert analyses: receivers, the analyze_alert task, retries, recovery."""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from alerts import analysis_tasks, events
from alerts.analysis import (
    AgentDisabled,
    analysis_create_pending,
    analysis_request_alert,
)
from alerts.analysis_tasks import analyze_alert, recover_analyses, retry_delay
from alerts.models import AlertAnalysis, AnalysisArtifact
from alerts.services import AlertNotFound
from alerts.tests.factories import AlertAnalysisFactory, AlertFactory
from alerts.tests.fake_agent import (
    FakeAgent,
    point_settings_at,
    run_queued_tasks,
    serve_fake_agent,
)
from kuberca.testing.http import Reply

pytestmark = pytest.mark.django_db

ANALYZE = "/analyze"


@pytest.fixture(scope="module")
def agent_server() -> Iterator[FakeAgent]:
    yield from serve_fake_agent()


@pytest.fixture
def agent(agent_server: FakeAgent, settings) -> FakeAgent:  # noqa: ANN001
    agent_server.reset()
    agent_server.slow_seconds = 1.0
    point_settings_at(settings, agent_server)
    return agent_server


@pytest.fixture
def analyzed() -> list[dict[str, Any]]:
    """What alert_analyzed was sent with, in order."""
    sent: list[dict[str, Any]] = []

    def record(sender: Any, **kwargs: Any) -> None:
        kwargs.pop("signal")
        sent.append(kwargs)

    events.alert_analyzed.connect(record, dispatch_uid="test-analyzed")
    yield sent
    events.alert_analyzed.disconnect(dispatch_uid="test-analyzed")


def fire(django_capture_on_commit_callbacks, *alerts) -> None:  # noqa: ANN001
    with django_capture_on_commit_callbacks(execute=True):
        events.alerts_fired.send(sender=None, alert_ids=[a.pk for a in alerts])


def resolve(django_capture_on_commit_callbacks, *alerts, stale=False) -> None:  # noqa: ANN001
    for alert in alerts:
        alert.status = "resolved"
        alert.resolved_at = alert.fired_at + timedelta(minutes=2)
        alert.save(update_fields=["status", "resolved_at"])
    with django_capture_on_commit_callbacks(execute=True):
        events.alerts_resolved.send(
            sender=None, alert_ids=[a.pk for a in alerts], stale=stale
        )


def queued(task_name: str = "analyze_alert") -> list[DBTaskResult]:
    return list(
        DBTaskResult.objects.filter(
            status="READY", task_path=f"alerts.analysis_tasks.{task_name}"
        )
    )


def test_fired_alerts_get_one_pending_analysis_each_and_a_task_after_commit(
    agent: FakeAgent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    alerts = AlertFactory.create_batch(3)

    with django_capture_on_commit_callbacks() as callbacks:
        events.alerts_fired.send(sender=None, alert_ids=[a.pk for a in alerts])
        assert queued() == []
    for callback in callbacks:
        callback()

    rows = AlertAnalysis.objects.filter(state="pending", status="firing")
    assert sorted(r.alert_id for r in rows) == sorted(a.pk for a in alerts)
    assert {r.incident_id for r in rows} == {a.incident_id for a in alerts}
    assert sorted(t.args_kwargs["args"][0] for t in queued()) == sorted(
        r.pk for r in rows
    )


def test_fired_receiver_costs_the_same_statements_for_one_or_many_alerts(
    agent: FakeAgent,
) -> None:
    one, many = AlertFactory.create_batch(1), AlertFactory.create_batch(20)

    counts = []
    for alerts in (one, many):
        with CaptureQueriesContext(connection) as queries:
            events.alerts_fired.send(sender=None, alert_ids=[a.pk for a in alerts])
        counts.append(len(queries))

    assert counts[0] == counts[1] <= 3
    assert AlertAnalysis.objects.count() == 21


def test_a_rolled_back_change_enqueues_nothing(agent: FakeAgent) -> None:
    alert = AlertFactory()

    with pytest.raises(RuntimeError):
        with transaction.atomic():
            events.alerts_fired.send(sender=None, alert_ids=[alert.pk])
            raise RuntimeError("ingest failed")

    assert AlertAnalysis.objects.count() == 0
    assert queued() == []


def test_a_repeated_fired_signal_makes_no_second_analysis(
    agent: FakeAgent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    alert = AlertFactory()
    fire(django_capture_on_commit_callbacks, alert)
    run_queued_tasks()

    fire(django_capture_on_commit_callbacks, alert)

    assert AlertAnalysis.objects.filter(alert=alert).count() == 1
    assert run_queued_tasks() == []
    assert len(agent.bodies(ANALYZE)) == 1


def test_a_stale_resolution_is_not_analysed(
    agent: FakeAgent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    alert = AlertFactory()

    resolve(django_capture_on_commit_callbacks, alert, stale=True)

    assert AlertAnalysis.objects.count() == 0
    assert queued() == []


def test_nothing_is_owed_or_enqueued_with_the_agent_off(
    settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    settings.AGENT_ENABLED = False
    alert = AlertFactory()

    fire(django_capture_on_commit_callbacks, alert)
    resolve(django_capture_on_commit_callbacks, alert)

    assert AlertAnalysis.objects.count() == 0
    assert queued() == []


def test_a_pending_analysis_fails_when_the_agent_was_turned_off(settings) -> None:  # noqa: ANN001
    settings.AGENT_URL = ""
    analysis = AlertAnalysisFactory(state="pending")

    assert analyze_alert.call(analysis.pk) == "disabled"

    analysis.refresh_from_db()
    assert (analysis.state, analysis.error) == ("failed", "agent disabled")


def test_analyze_alert_sends_the_spec_body_and_stores_the_analysis(
    agent: FakeAgent, analyzed: list, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    from notifications.tests.factories import SlackMessageFactory

    alert = AlertFactory(
        fingerprint="40f1d89db4e049de",
        thread_ts="1764778596.000100",
        generator_url="http://prometheus/graph?g0.expr=up",
    )
    SlackMessageFactory(incident=alert.incident, ts="1764778596.000100", state="sent")
    fire(django_capture_on_commit_callbacks, alert)

    assert run_queued_tasks() == [("analyze_alert", "done")]

    (body,) = agent.bodies(ANALYZE)
    assert agent.invalid == []
    assert body == {
        "alert": {
            "status": "firing",
            "labels": alert.labels,
            "annotations": alert.annotations,
            "startsAt": alert.fired_at.isoformat().replace("+00:00", "Z"),
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph?g0.expr=up",
            "fingerprint": "40f1d89db4e049de",
        },
        "thread_ts": "1764778596.000100",
        "incident_id": alert.incident_id,
        "analysis_type": "firing",
        "language": "en",
    }
    analysis = AlertAnalysis.objects.get()
    assert analysis.state == "done" and analysis.attempts == 1
    assert analysis.summary == "firing summary of 40f1d89db4e049de"
    assert analysis.detail == "firing detail of 40f1d89db4e049de"
    assert analysis.analysis.startswith("**Root cause**")
    assert analysis.context == {"analysed": "40f1d89db4e049de"}
    assert analysis.completed_at is not None
    artifact = AnalysisArtifact.objects.get()
    assert (artifact.analysis, artifact.artifact_type) == (analysis, "promql")
    assert artifact.result == {"value": [1, "0"]}
    alert.refresh_from_db()
    assert alert.analysis_summary == analysis.summary
    assert alert.analysis_detail == analysis.detail
    assert analyzed == [
        {"alert_id": alert.pk, "analysis_id": analysis.pk, "status": "firing"}
    ]


@pytest.mark.parametrize("alert_thread_ts", ["", "1700000000.000100"])
def test_analyze_alert_sends_the_thread_of_the_alerts_incident(
    agent: FakeAgent, django_capture_on_commit_callbacks, alert_thread_ts: str
) -> None:  # noqa: ANN001
    # "": its own reply is not posted yet (replies are paced); a ts: it was
    # posted in the thread of the incident it was moved from.
    from notifications.tests.factories import SlackMessageFactory

    alert = AlertFactory(thread_ts=alert_thread_ts)
    SlackMessageFactory(incident=alert.incident, ts="1700000000.000200", state="sent")
    fire(django_capture_on_commit_callbacks, alert)

    run_queued_tasks()

    (body,) = agent.bodies(ANALYZE)
    assert body["thread_ts"] == "1700000000.000200"


def test_analyze_alert_sends_no_thread_before_its_incidents_root_is_posted(
    agent: FakeAgent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    from notifications.tests.factories import SlackMessageFactory

    alert = AlertFactory(thread_ts="1700000000.000100")  # its incident before a move
    SlackMessageFactory(incident=alert.incident, ts="")  # pending
    fire(django_capture_on_commit_callbacks, alert)

    run_queued_tasks()

    (body,) = agent.bodies(ANALYZE)
    assert body["thread_ts"] == ""


def test_analyze_alert_sends_korean_when_language_is_ko(
    agent: FakeAgent, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    settings.LANGUAGE = "ko"
    fire(django_capture_on_commit_callbacks, AlertFactory(thread_ts=""))

    run_queued_tasks()

    (body,) = agent.bodies(ANALYZE)
    assert (body["language"], body["thread_ts"]) == ("ko", "")


def test_a_resolved_analysis_sends_the_firing_analysis_as_previous(
    agent: FakeAgent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    alert = AlertFactory()
    fire(django_capture_on_commit_callbacks, alert)
    run_queued_tasks()
    firing = AlertAnalysis.objects.get()

    resolve(django_capture_on_commit_callbacks, alert)
    assert run_queued_tasks() == [("analyze_alert", "done")]

    body = agent.bodies(ANALYZE)[1]
    assert agent.invalid == []
    assert body["analysis_type"] == "resolved"
    assert body["alert"]["status"] == "resolved"
    assert body["alert"]["endsAt"] == alert.resolved_at.isoformat().replace(
        "+00:00", "Z"
    )
    assert body["previous_analysis"] == {
        "status": "firing",
        "summary": firing.summary,
        "detail": firing.detail,
        "created_at": firing.created_at.isoformat().replace("+00:00", "Z"),
    }
    alert.refresh_from_db()
    assert alert.analysis_summary == f"resolved summary of {alert.fingerprint}"


def test_a_resolved_analysis_without_a_firing_one_sends_no_previous(
    agent: FakeAgent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    alert = AlertFactory()

    resolve(django_capture_on_commit_callbacks, alert)
    run_queued_tasks()

    assert "previous_analysis" not in agent.bodies(ANALYZE)[0]
    assert agent.invalid == []


def test_a_resolved_analysis_waits_for_the_firing_one_to_finish(
    agent: FakeAgent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    alert = AlertFactory()
    with django_capture_on_commit_callbacks(execute=True):
        events.alerts_fired.send(sender=None, alert_ids=[alert.pk])
    resolve(django_capture_on_commit_callbacks, alert)
    resolved = AlertAnalysis.objects.get(status="resolved")

    assert analyze_alert.call(resolved.pk) == "waiting"
    assert len(agent.bodies(ANALYZE)) == 0

    run_queued_tasks()

    bodies = agent.bodies(ANALYZE)
    assert [b["analysis_type"] for b in bodies] == ["firing", "resolved"]
    assert "previous_analysis" in bodies[1]


def test_summary_and_detail_fall_back_to_the_analysis_text(
    agent: FakeAgent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    from kuberca.testing.http import Reply

    agent.then(ANALYZE, Reply(200, {"status": "ok", "analysis": "# Only markdown"}))
    alert = AlertFactory()
    fire(django_capture_on_commit_callbacks, alert)

    run_queued_tasks()

    analysis = AlertAnalysis.objects.get()
    assert analysis.summary == analysis.detail == "# Only markdown"
    assert analysis.artifacts.count() == 0
    alert.refresh_from_db()
    assert alert.analysis_summary == alert.analysis_detail == "# Only markdown"


def test_analyze_alert_run_twice_calls_the_agent_once(
    agent: FakeAgent, analyzed: list
) -> None:
    analysis = AlertAnalysisFactory(state="pending")

    assert analyze_alert.call(analysis.pk) == "done"
    assert analyze_alert.call(analysis.pk) == "skipped"

    assert len(agent.bodies(ANALYZE)) == 1
    assert AnalysisArtifact.objects.count() == 1
    assert len(analyzed) == 1


def test_analyze_alert_ignores_an_unknown_analysis(agent: FakeAgent) -> None:
    assert analyze_alert.call(999999) == "skipped"
    assert agent.bodies(ANALYZE) == []


def test_a_server_error_is_retried_later_with_backoff(
    agent: FakeAgent, analyzed: list
) -> None:
    agent.then(ANALYZE, "server_error")
    analysis = AlertAnalysisFactory(state="pending")
    before = timezone.now()

    assert analyze_alert.call(analysis.pk) == "retrying"

    analysis.refresh_from_db()
    assert (analysis.state, analysis.attempts) == ("pending", 1)
    assert analysis.error == "HTTP 500"
    (retry,) = queued()
    assert before + timedelta(seconds=7) < retry.run_after
    assert retry.run_after < timezone.now() + timedelta(seconds=15.1)
    assert analyzed == []

    assert run_queued_tasks() == [("analyze_alert", "done")]
    analysis.refresh_from_db()
    assert (analysis.state, analysis.attempts, analysis.error) == ("done", 2, "")
    assert len(agent.bodies(ANALYZE)) == 2
    assert len(analyzed) == 1


def test_retry_delay_doubles_with_jitter_up_to_the_cap(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(analysis_tasks, "RETRY_BASE_SECONDS", 10.0)
    monkeypatch.setattr(analysis_tasks, "RETRY_CAP_SECONDS", 100.0)

    for attempt, ceiling in [(1, 10), (2, 20), (3, 40), (4, 80), (5, 100), (9, 100)]:
        delays = [retry_delay(attempt).total_seconds() for _ in range(200)]
        # Jitter takes each delay from the upper half of the ceiling and
        # spreads them over it: 200 draws miss a bound about once in 10^18 runs.
        assert ceiling / 2 <= min(delays) < ceiling * 0.6
        assert ceiling * 0.9 < max(delays) <= ceiling


def test_agent_down_then_up_completes_every_analysis_once(
    local_server, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    settings.AGENT_URL = f"http://127.0.0.1:{dead_port}"
    alerts = AlertFactory.create_batch(3)
    fire(django_capture_on_commit_callbacks, *alerts)

    outcomes = [analyze_alert.call(t.args_kwargs["args"][0]) for t in queued()]
    assert outcomes == ["retrying"] * 3
    assert set(AlertAnalysis.objects.values_list("state", "attempts")) == {
        ("pending", 1)
    }

    agent = FakeAgent(local_server)
    point_settings_at(settings, agent)
    run_queued_tasks(delayed=True)

    assert set(AlertAnalysis.objects.values_list("state", "attempts")) == {("done", 2)}
    fingerprints = [b["alert"]["fingerprint"] for b in agent.bodies(ANALYZE)]
    assert sorted(fingerprints) == sorted(a.fingerprint for a in alerts)
    assert run_queued_tasks() == []


def test_a_slow_agent_times_out_and_is_retried(agent: FakeAgent, settings) -> None:  # noqa: ANN001
    settings.AGENT_TIMEOUT_SECONDS = 0.2
    agent.then(ANALYZE, "slow")
    analysis = AlertAnalysisFactory(state="pending")

    assert analyze_alert.call(analysis.pk) == "retrying"
    analysis.refresh_from_db()
    assert analysis.error.startswith("timeout")

    assert run_queued_tasks() == [("analyze_alert", "done")]


def test_a_bad_request_is_recorded_and_not_retried(agent: FakeAgent) -> None:
    agent.then(ANALYZE, "bad_request")
    analysis = AlertAnalysisFactory(state="pending")

    assert analyze_alert.call(analysis.pk) == "failed"

    analysis.refresh_from_db()
    assert analysis.state == "failed" and analysis.attempts == 1
    assert analysis.error.startswith("HTTP 400")
    assert "labels is required" in analysis.error
    assert analysis.completed_at is not None
    assert run_queued_tasks() == []
    assert len(agent.bodies(ANALYZE)) == 1


def test_a_malformed_answer_is_recorded_and_not_retried(agent: FakeAgent) -> None:
    agent.then(ANALYZE, "invalid_json")
    analysis = AlertAnalysisFactory(state="pending")

    assert analyze_alert.call(analysis.pk) == "failed"

    analysis.refresh_from_db()
    assert analysis.error == "malformed response: not JSON"
    assert run_queued_tasks() == []


def test_an_answer_holding_nul_characters_is_stored(agent: FakeAgent) -> None:
    agent.then(
        ANALYZE,
        Reply(
            200,
            {
                "analysis": "log line: a\u0000b",
                "context": {"k": "v\u0000"},
                "artifacts": [
                    {"type": "logs", "query": "q\u0000", "result": ["\u0000"]}
                ],
            },
        ),
    )
    analysis = AlertAnalysisFactory(state="pending")

    assert analyze_alert.call(analysis.pk) == "done"

    analysis.refresh_from_db()
    assert analysis.analysis == "log line: a\ufffdb"
    assert analysis.context == {"k": "v\ufffd"}
    [artifact] = AnalysisArtifact.objects.filter(analysis=analysis)
    assert (artifact.query, artifact.result) == ("q\ufffd", ["\ufffd"])


def test_a_refusal_holding_a_nul_byte_is_recorded(agent: FakeAgent) -> None:
    agent.then(ANALYZE, Reply(422, b"bad \x00 input"))
    analysis = AlertAnalysisFactory(state="pending")

    assert analyze_alert.call(analysis.pk) == "failed"

    analysis.refresh_from_db()
    assert analysis.error == "HTTP 422: bad \ufffd input"


def test_an_answer_nested_too_deeply_fails_at_once(agent: FakeAgent) -> None:
    nested = b"[" * 950 + b"]" * 950
    agent.then(
        ANALYZE, Reply(200, b'{"analysis": "x", "context": {"a": ' + nested + b"}}")
    )
    analysis = AlertAnalysisFactory(state="pending")

    assert analyze_alert.call(analysis.pk) == "failed"

    analysis.refresh_from_db()
    assert analysis.state == "failed" and not analysis.transient_failure
    assert analysis.error == "malformed response: JSON nested too deeply"
    assert run_queued_tasks() == []


def test_analysis_gives_up_after_the_maximum_attempts(agent: FakeAgent) -> None:
    agent.then(ANALYZE, "server_error", "server_error", "server_error", "ok")
    analysis = AlertAnalysisFactory(state="pending")

    analyze_alert.call(analysis.pk)
    outcomes = [value for _, value in run_queued_tasks()]

    assert outcomes == ["retrying", "failed"]
    analysis.refresh_from_db()
    assert (analysis.state, analysis.attempts) == ("failed", 3)
    assert analysis.error == "gave up after 3 attempts: HTTP 500"
    assert len(agent.bodies(ANALYZE)) == 3


def test_a_run_whose_row_was_recovered_meanwhile_stores_nothing(
    agent: FakeAgent, analyzed: list
) -> None:
    from alerts.analysis import analysis_store_result
    from alerts.tests.fake_agent import canned_analysis

    analysis = AlertAnalysisFactory(state="running", attempts=1)
    response = canned_analysis(
        {"alert": {"fingerprint": "f"}, "analysis_type": "firing", "thread_ts": ""}
    )
    from alerts.agent import parse_analyze_response

    stored = analysis_store_result(
        analysis_id=analysis.pk, attempt=2, response=parse_analyze_response(response)
    )

    assert stored is False
    analysis.refresh_from_db()
    assert analysis.state == "running"
    assert analyzed == []


def test_an_older_analysis_finishing_late_does_not_overwrite_the_alert(
    agent: FakeAgent,
) -> None:
    alert = AlertFactory(status="resolved")
    older = AlertAnalysisFactory(alert=alert, state="pending")
    AlertAnalysisFactory(alert=alert, status="resolved", summary="newest")
    alert.analysis_summary = "newest"
    alert.save(update_fields=["analysis_summary"])

    analyze_alert.call(older.pk)

    alert.refresh_from_db()
    assert alert.analysis_summary == "newest"


def test_manual_request_runs_again_even_when_an_analysis_exists(
    agent: FakeAgent, django_capture_on_commit_callbacks, analyzed: list
) -> None:  # noqa: ANN001
    alert = AlertFactory()
    AlertAnalysisFactory(alert=alert)

    with django_capture_on_commit_callbacks(execute=True):
        manual = analysis_request_alert(alert.pk)
    with django_capture_on_commit_callbacks(execute=True):
        again = analysis_request_alert(alert_id=alert.pk)

    assert again == manual
    assert (manual.trigger, manual.status, manual.state) == (
        "manual",
        "firing",
        "pending",
    )
    assert [v for _, v in run_queued_tasks()] == ["done"]
    alert.refresh_from_db()
    assert alert.analysis_summary == f"firing summary of {alert.fingerprint}"
    assert analyzed[0]["analysis_id"] == manual.pk
    assert AlertAnalysis.objects.filter(alert=alert).count() == 2


def test_manual_request_rejects_an_unknown_alert(agent: FakeAgent) -> None:
    with pytest.raises(AlertNotFound):
        analysis_request_alert("ALR-missing")


def test_manual_request_rejects_when_the_agent_is_off(settings) -> None:  # noqa: ANN001
    settings.AGENT_ENABLED = False

    with pytest.raises(AgentDisabled):
        analysis_request_alert(AlertFactory().pk)


def test_analyses_run_without_slack(
    agent: FakeAgent, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    settings.SLACK_BOT_TOKEN = ""
    settings.SLACK_CHANNEL_ID = ""
    settings.SLACK_ENABLED = False
    alert = AlertFactory(thread_ts="")

    fire(django_capture_on_commit_callbacks, alert)
    resolve(django_capture_on_commit_callbacks, alert)
    run_queued_tasks()

    states = AlertAnalysis.objects.values_list("status", "state")
    assert sorted(states) == [("firing", "done"), ("resolved", "done")]


def age(analysis: AlertAnalysis, minutes: float, field: str = "updated_at") -> None:
    AlertAnalysis.objects.filter(pk=analysis.pk).update(
        **{field: timezone.now() - timedelta(minutes=minutes)}
    )


def test_recover_requeues_a_pending_analysis_whose_task_was_lost(
    agent: FakeAgent,
) -> None:
    lost = AlertAnalysisFactory(state="pending")
    recent = AlertAnalysisFactory(state="pending")
    age(lost, 6)

    assert recover_analyses.call()["pending"] == 1
    assert recover_analyses.call()["pending"] == 0

    assert [t.args_kwargs["args"] for t in queued()] == [[lost.pk]]
    run_queued_tasks()
    lost.refresh_from_db()
    recent.refresh_from_db()
    assert (lost.state, recent.state) == ("done", "pending")


def test_recover_hands_back_a_running_analysis_whose_worker_died(
    agent: FakeAgent, settings
) -> None:  # noqa: ANN001
    settings.AGENT_TIMEOUT_SECONDS = 60
    lost = AlertAnalysisFactory(state="running", attempts=1)
    busy = AlertAnalysisFactory(state="running", attempts=1)
    age(lost, 4)
    age(busy, 2)

    assert recover_analyses.call()["running"] == 1

    run_queued_tasks()
    lost.refresh_from_db()
    busy.refresh_from_db()
    assert (lost.state, lost.attempts) == ("done", 2)
    assert busy.state == "running"


def test_recover_fails_a_lost_analysis_whose_attempts_are_spent(
    agent: FakeAgent,
) -> None:
    lost = AlertAnalysisFactory(state="running", attempts=3)
    age(lost, 60)

    assert recover_analyses.call()["running"] == 0

    lost.refresh_from_db()
    assert lost.state == "failed"
    assert lost.error == "gave up after 3 attempts: worker lost"
    assert queued() == []


def _failed_minutes_ago(analysis: AlertAnalysis, minutes: float) -> None:
    age(analysis, minutes, field="completed_at")


def test_an_analysis_failed_for_want_of_the_agent_gets_another_round(
    agent: FakeAgent,
) -> None:
    agent.then(ANALYZE, "server_error", "server_error", "server_error")
    analysis = AlertAnalysisFactory(state="pending")
    analyze_alert.call(analysis.pk)
    run_queued_tasks()
    analysis.refresh_from_db()
    assert (analysis.state, analysis.transient_failure) == ("failed", True)

    _failed_minutes_ago(analysis, 9)
    assert recover_analyses.call()["outage"] == 0
    _failed_minutes_ago(analysis, 11)
    assert recover_analyses.call()["outage"] == 1
    assert recover_analyses.call()["outage"] == 0
    run_queued_tasks()  # the Agent is back
    analysis.refresh_from_db()
    assert (analysis.state, analysis.attempts) == ("done", 1)
    assert analysis.transient_failure is False
    assert len(agent.bodies(ANALYZE)) == 4


def test_an_analysis_the_agent_refused_is_not_asked_again(agent: FakeAgent) -> None:
    agent.then(ANALYZE, "bad_request")
    analysis = AlertAnalysisFactory(state="pending")
    analyze_alert.call(analysis.pk)
    analysis.refresh_from_db()
    assert (analysis.state, analysis.transient_failure) == ("failed", False)

    _failed_minutes_ago(analysis, 30)
    assert recover_analyses.call()["outage"] == 0
    assert queued() == []


def test_outage_rounds_stop_once_the_analysis_is_old(
    agent: FakeAgent, settings
) -> None:  # noqa: ANN001
    old = AlertAnalysisFactory(state="failed", transient_failure=True)
    young = AlertAnalysisFactory(state="failed", transient_failure=True)
    AlertAnalysis.objects.filter(pk=old.pk).update(
        created_at=timezone.now()
        - settings.AGENT_OUTAGE_RETRY_FOR
        - timedelta(minutes=1)
    )
    _failed_minutes_ago(old, 30)
    _failed_minutes_ago(young, 30)

    assert recover_analyses.call()["outage"] == 1
    assert [t.args_kwargs["args"] for t in queued()] == [[young.pk]]
    settings.AGENT_OUTAGE_RETRY_FOR = timedelta(0)
    _failed_minutes_ago(old, 30)
    assert recover_analyses.call()["outage"] == 0


def test_recover_is_cheap_with_nothing_to_do(agent: FakeAgent) -> None:
    AlertAnalysisFactory()

    with CaptureQueriesContext(connection) as queries:
        assert recover_analyses.call() == {
            "running": 0,
            "pending": 0,
            "summaries": 0,
            "outage": 0,
        }

    assert len(queries) == 5


def test_create_pending_ignores_an_empty_list(agent: FakeAgent) -> None:
    with CaptureQueriesContext(connection) as queries:
        analysis_create_pending(alert_ids=[], status="firing")
    assert len(queries) == 0


def test_the_request_id_of_the_change_follows_the_analysis_task(
    agent: FakeAgent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    from kuberca.logging import request_id_var

    alert = AlertFactory()
    token = request_id_var.set("req-webhook-1")
    try:
        fire(django_capture_on_commit_callbacks, alert)
    finally:
        request_id_var.reset(token)

    (task,) = queued()
    assert task.args_kwargs["kwargs"] == {"request_id": "req-webhook-1"}
    assert run_queued_tasks() == [("analyze_alert", "done")]


def test_rows_written_without_the_outage_flags_take_false(agent: FakeAgent) -> None:
    """During a rolling update the release before writes rows without them."""
    from incidents.models import Incident

    alert = AlertFactory()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO alerts_alertanalysis (alert_id, status, trigger, state, "
            "summary, detail, analysis, context, attempts, error, created_at, "
            "updated_at) VALUES (%s, 'firing', 'manual', 'failed', '', '', '', "
            "'{}', 3, 'x', now(), now()) RETURNING id",
            [alert.pk],
        )
        (analysis_id,) = cursor.fetchone()
        cursor.execute(
            "UPDATE incidents_incident SET summary_status = 'failed' "
            "WHERE incident_id = %s",
            [alert.incident_id],
        )
    assert AlertAnalysis.objects.get(pk=analysis_id).transient_failure is False
    incident = Incident.objects.get(pk=alert.incident_id)
    assert incident.summary_transient_failure is False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_default FROM information_schema.columns "
            "WHERE table_name = 'incidents_incident' "
            "AND column_name = 'summary_transient_failure'"
        )
        assert cursor.fetchone() == ("false",)
