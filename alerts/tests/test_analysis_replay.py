"""The recorded Alertmanager outage, replayed through ingestion to the Agent."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts.models import Alert, AlertAnalysis
from alerts.services import delivery_ingest
from alerts.tests.fake_agent import (
    FakeAgent,
    point_settings_at,
    run_queued_tasks,
    serve_fake_agent,
)
from incidents.models import Incident

pytestmark = pytest.mark.django_db

OUTAGE = (
    Path(__file__).resolve().parents[2] / "tests/fixtures/alertmanager/outage-sequence"
)
FILES = sorted(OUTAGE.glob("*.json"))
FIRED = {
    "40f1d89db4e049de",
    "abcd812f8786eda9",
    "28b34eba03745df8",
    "e50041bec9ca3349",
    "7f06c19936e01350",
    "89b7a48dc001738e",
    "de2e3e1f1aba9edb",
    "5b7f87e67fae94b0",
}
RESOLVED = {
    "40f1d89db4e049de",
    "abcd812f8786eda9",
    "28b34eba03745df8",
    "e50041bec9ca3349",
}


@pytest.fixture(scope="module")
def agent_server() -> Iterator[FakeAgent]:
    yield from serve_fake_agent()


@pytest.fixture
def agent(agent_server: FakeAgent, settings) -> FakeAgent:  # noqa: ANN001
    agent_server.reset()
    point_settings_at(settings, agent_server)
    settings.SLACK_ENABLED = False
    return agent_server


def deliver(path: Path, django_capture_on_commit_callbacks) -> None:  # noqa: ANN001
    with django_capture_on_commit_callbacks(execute=True):
        result = delivery_ingest(
            body=path.read_bytes(), headers={}, source_address=None
        )
    assert result.http_status == 200


def analysed(agent: FakeAgent, kind: str) -> list[dict]:
    return [b for b in agent.bodies("/analyze") if b["analysis_type"] == kind]


def check_outcome(agent: FakeAgent) -> None:
    assert agent.invalid == []
    firing = analysed(agent, "firing")
    resolved = analysed(agent, "resolved")
    assert sorted(b["alert"]["fingerprint"] for b in firing) == sorted(FIRED)
    assert sorted(b["alert"]["fingerprint"] for b in resolved) == sorted(RESOLVED)
    for body in resolved:
        fingerprint = body["alert"]["fingerprint"]
        assert body["previous_analysis"]["status"] == "firing"
        assert (
            body["previous_analysis"]["summary"] == f"firing summary of {fingerprint}"
        )
    alerts = {a.fingerprint: a for a in Alert.objects.all()}
    for body in firing + resolved:
        assert body["incident_id"] == alerts[body["alert"]["fingerprint"]].incident_id
    assert AlertAnalysis.objects.filter(state="done").count() == len(FIRED) + len(
        RESOLVED
    )
    assert AlertAnalysis.objects.exclude(state="done").count() == 0
    for fingerprint in RESOLVED:
        assert alerts[fingerprint].analysis_summary == (
            f"resolved summary of {fingerprint}"
        )
    (summary,) = agent.bodies("/summarize-incident")
    shop = Incident.objects.get(pk=summary["incident_id"])
    assert shop.status == "resolved" and shop.summary_status == "done"
    assert sorted(a["fingerprint"] for a in summary["alerts"]) == sorted(RESOLVED)
    assert {a["analysis_summary"] for a in summary["alerts"]} == {
        f"resolved summary of {fp}" for fp in RESOLVED
    }


def test_replaying_the_outage_analyses_each_alert_once_per_status(
    agent: FakeAgent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    for path in FILES:
        deliver(path, django_capture_on_commit_callbacks)
        run_queued_tasks()

    check_outcome(agent)

    calls = len(agent.server.requests)
    for path in FILES:
        deliver(path, django_capture_on_commit_callbacks)
    assert run_queued_tasks() == []
    assert len(agent.server.requests) == calls
    assert AlertAnalysis.objects.count() == len(FIRED) + len(RESOLVED)


def test_a_worker_behind_the_deliveries_still_sends_the_firing_analysis_along(
    agent: FakeAgent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    for path in FILES:
        deliver(path, django_capture_on_commit_callbacks)

    run_queued_tasks()

    check_outcome(agent)
