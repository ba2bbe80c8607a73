"""Fixtures of the reliability scenarios: one live kuberca for the session.

An embedded PostgreSQL of its own (never pytest's test database), gunicorn
with two workers and one task worker, pointed at a fake Slack and a fake
Agent in this process. Each scenario starts from empty tables with everything
running; what a scenario killed is started again before the next one.

Time is compressed: retries, leases and the recovery jobs run in seconds, not
minutes (`live.scenario_env`; production keeps its defaults), and the "minute"
of a peer outage lasts RELIABILITY_OUTAGE_SECONDS (default 15).
"""

import logging
from collections.abc import Iterator

import pytest

from tests.reliability.fakes import OutageAgent, OutageSlack
from tests.reliability.live import Kuberca, LiveDatabase, scenario_env

logger = logging.getLogger(__name__)


@pytest.fixture(scope="session")
def slack() -> Iterator[OutageSlack]:
    fake = OutageSlack()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def agent() -> Iterator[OutageAgent]:
    fake = OutageAgent()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def live(
    tmp_path_factory: pytest.TempPathFactory, slack: OutageSlack, agent: OutageAgent
) -> Iterator[Kuberca]:
    folder = tmp_path_factory.mktemp("reliability")
    database = LiveDatabase(folder)
    kuberca: Kuberca | None = None
    try:
        database.start()
        kuberca = Kuberca(
            database=database,
            log_dir=folder,
            env=scenario_env(database, slack, agent, folder),
        )
        kuberca.migrate()
        kuberca.start_web()
        kuberca.start_worker()
        yield kuberca
    finally:
        if kuberca is not None:
            kuberca.stop()
        database.stop()


@pytest.fixture
def kuberca(live: Kuberca, slack: OutageSlack, agent: OutageAgent) -> Iterator[Kuberca]:
    """The live kuberca, everything running, tables and fakes empty."""
    live.ensure_running()
    live.reset()
    slack.reset()
    agent.reset()
    try:
        yield live
    finally:
        slack.reset()
        agent.reset()
        # Shown by pytest when the scenario failed.
        logger.warning("kuberca logs after the scenario:\n%s", live.logs())
