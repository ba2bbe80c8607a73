"""A database restart while deliveries arrive loses nothing.

The database stops at once (as in a crash) while senders that retry like
Alertmanager keep posting, and comes back a few seconds later. Deliveries
during the outage get 503 (never a 500, never a hang), their retries succeed,
every alert is stored once, and the web server and the worker carry on with
the Slack and Agent work without a restart of their own.
"""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.reliability.checks import (
    alert_counts,
    assert_nothing_failed,
    assert_one_analysis_per_alert,
    assert_slack_posted_once,
    wait_settled,
)
from tests.reliability.fakes import OutageSlack
from tests.reliability.live import (
    AlertmanagerSender,
    Kuberca,
    Outcome,
    alert,
    payload,
    wait_for,
)

pytestmark = pytest.mark.reliability

DELIVERIES = 60
SENDERS = 4
OUTAGE_SECONDS = 3.0


def test_database_restart_answers_503_and_the_retries_store_everything(
    kuberca: Kuberca, slack: OutageSlack
) -> None:
    bodies = [
        payload([alert(f"db{n:02d}", namespace=f"zone-{n % 6}")])
        for n in range(DELIVERIES)
    ]
    sender = AlertmanagerSender(kuberca.webhook_url, cap=0.5, deadline=60)

    def deliver(body: bytes) -> Outcome:
        outcome = sender.deliver(body)
        time.sleep(0.1)  # spread the deliveries over the outage
        return outcome

    db = kuberca.database
    web_pid, worker_pid = kuberca.web.pid, kuberca.worker.pid
    with ThreadPoolExecutor(max_workers=SENDERS) as pool:
        futures = [pool.submit(deliver, body) for body in bodies]
        wait_for(lambda: sender.finished >= 10, "the first deliveries", timeout=30)
        db.crash()
        try:
            time.sleep(OUTAGE_SECONDS)
        finally:
            db.restart()
        outcomes = [future.result(timeout=90) for future in futures]

    assert all(o.delivered for o in outcomes), [
        o.attempts for o in outcomes if not o.delivered
    ]
    statuses = {status for o in outcomes for status in o.attempts}
    assert 503 in statuses, statuses
    assert statuses <= {200, 503}, statuses
    assert alert_counts(db) == {f"db{n:02d}": 1 for n in range(DELIVERIES)}
    assert db.value("SELECT count(*) FROM incidents_incident") == 6

    wait_settled(db, analyses=DELIVERIES, timeout=60)
    assert_nothing_failed(db)
    assert_one_analysis_per_alert(db, DELIVERIES)
    assert_slack_posted_once(db, slack)
    assert len(slack.roots()) == 6
    assert (kuberca.web.pid, kuberca.worker.pid) == (web_pid, worker_pid)
    assert kuberca.web.alive() and kuberca.worker.alive()
