"""Slack rate-limiting and the Agent failing for a while lose nothing.

For RELIABILITY_OUTAGE_SECONDS (the "minute" of the scenario; 15 s by
default, 60 works) Slack answers every call 429 with Retry-After and the
Agent answers 500, while deliveries open incidents. The worker backs off and
tries again (the Agent's attempts are configured to outlast the outage);
afterwards every analysis is stored and every message posted, once each.
"""

import time

import pytest

from tests.reliability.checks import (
    assert_agent_answered_once,
    assert_nothing_failed,
    assert_one_analysis_per_alert,
    assert_slack_posted_once,
    wait_settled,
)
from tests.reliability.fakes import OutageAgent, OutageSlack
from tests.reliability.live import (
    OUTAGE_SECONDS,
    AlertmanagerSender,
    Kuberca,
    alert,
    payload,
)

pytestmark = pytest.mark.reliability

INCIDENTS = 4
ALERTS_PER_INCIDENT = 2
ALERTS = INCIDENTS * ALERTS_PER_INCIDENT


def test_slack_429_and_agent_500_for_a_while_then_everything_once(
    kuberca: Kuberca, slack: OutageSlack, agent: OutageAgent
) -> None:
    slack.outage(OUTAGE_SECONDS)
    agent.outage(OUTAGE_SECONDS)
    outage_ends = time.monotonic() + OUTAGE_SECONDS
    sender = AlertmanagerSender(kuberca.webhook_url)
    for n in range(INCIDENTS):
        body = payload(
            [
                alert(f"po{n}-{k}", namespace=f"app-{n}")
                for k in range(ALERTS_PER_INCIDENT)
            ]
        )
        assert sender.deliver(body).delivered

    db = kuberca.database
    wait_settled(db, analyses=ALERTS, timeout=OUTAGE_SECONDS + 30)
    settled_after = time.monotonic() - outage_ends

    assert slack.refused > INCIDENTS, "Slack was not asked during the outage"
    assert agent.refused >= ALERTS, "the Agent was not asked during the outage"
    assert settled_after > 0, "settled before the outage ended"
    assert_nothing_failed(db)
    assert_one_analysis_per_alert(db, ALERTS)
    # Nothing was cut off, so every alert was answered once and only once.
    assert_agent_answered_once(agent, alerts=ALERTS)
    assert_slack_posted_once(db, slack)
    assert len(slack.roots()) == INCIDENTS
