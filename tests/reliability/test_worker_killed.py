"""kill -9 of the task worker while Slack and Agent calls run loses nothing.

The worker is killed twice: once while it waits for the Agent's answer to an
/analyze call, once while it waits for Slack to accept a message. Each time it
is started again (as its Deployment would), and the periodic recover_* jobs
find the rows the dead worker left running or sending once their lease runs
out. Afterwards every analysis is stored once and every Slack message of the
outbox was posted once. The Agent was asked twice about the one alert whose
call was cut off: its first answer was never read.
"""

import os
import signal

import pytest

from kuberca.testing.http import RecordedRequest
from tests.reliability.checks import (
    assert_agent_answered_once,
    assert_nothing_failed,
    assert_one_analysis_per_alert,
    assert_slack_posted_once,
    wait_settled,
)
from tests.reliability.fakes import OutageAgent, OutageSlack
from tests.reliability.live import AlertmanagerSender, Kuberca, alert, payload

pytestmark = pytest.mark.reliability

INCIDENTS = 6
ALERTS_PER_INCIDENT = 2
ALERTS = INCIDENTS * ALERTS_PER_INCIDENT


def test_worker_killed_mid_slack_and_agent_calls_does_each_thing_once(
    kuberca: Kuberca, slack: OutageSlack, agent: OutageAgent
) -> None:
    slack.delay = 0.1
    agent.delay = 0.2
    kills: list[str] = []

    def kill_worker(what: str) -> bool:
        kills.append(what)
        os.killpg(kuberca.worker.pid, signal.SIGKILL)
        return True

    def on_agent(request: RecordedRequest) -> bool:
        analyzed = len(agent.server.requests_to("/analyze"))
        if "agent" in kills or analyzed < 3:
            return False
        return kill_worker("agent")

    def on_slack(request: RecordedRequest) -> bool:
        if "slack" in kills or "postMessage" not in request.path:
            return False
        if len(slack.posts()) < 4:
            return False
        return kill_worker("slack")

    agent.before_answer = on_agent
    slack.before_answer = on_slack

    sender = AlertmanagerSender(kuberca.webhook_url)
    db = kuberca.database
    with kuberca.worker.kept_alive() as restarts:
        for n in range(INCIDENTS):
            body = payload(
                [
                    alert(f"wk{n}-{k}", namespace=f"svc-{n}")
                    for k in range(ALERTS_PER_INCIDENT)
                ]
            )
            assert sender.deliver(body).delivered
        wait_settled(db, analyses=ALERTS, timeout=60)

    assert sorted(kills) == ["agent", "slack"]
    assert len(restarts) == 2
    assert_nothing_failed(db)
    assert_one_analysis_per_alert(db, ALERTS)
    # The call cut off was asked again: the Agent saw that alert twice.
    assert len(agent.cut_off) == 1
    assert_agent_answered_once(agent, alerts=ALERTS)
    assert_slack_posted_once(db, slack)
    assert len(slack.roots()) == INCIDENTS
