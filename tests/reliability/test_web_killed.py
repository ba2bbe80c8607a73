"""kill -9 of the web server in the middle of deliveries loses nothing.

200 deliveries go out from several senders that retry like Alertmanager (on
5xx and connection errors). The web server (gunicorn master and workers) is
killed with SIGKILL while they are under way, then started again. A delivery
the server stored but could not answer is sent again: ingestion knows the
alerts by fingerprint, so every alert is stored exactly once.
"""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.reliability.checks import alert_counts
from tests.reliability.live import (
    AlertmanagerSender,
    Kuberca,
    alert,
    payload,
    wait_for,
)

pytestmark = pytest.mark.reliability

DELIVERIES = 200
SENDERS = 8
ALERTS_PER_DELIVERY = 2


def test_web_server_killed_mid_deliveries_stores_every_alert_once(
    kuberca: Kuberca,
) -> None:
    bodies = [
        payload(
            [
                alert(f"web{n:03d}-{k}", namespace=f"team-{n % 10}")
                for k in range(ALERTS_PER_DELIVERY)
            ]
        )
        for n in range(DELIVERIES)
    ]
    sender = AlertmanagerSender(kuberca.webhook_url, cap=0.5, deadline=60)
    db = kuberca.database
    with ThreadPoolExecutor(max_workers=SENDERS) as pool:
        futures = [pool.submit(sender.deliver, body) for body in bodies]
        # Kill while requests are in flight: a third is through.
        wait_for(
            lambda: sender.finished >= DELIVERIES // 3,
            "a third of the deliveries",
            timeout=60,
        )
        stored_before = db.value("SELECT count(*) FROM alerts_alert")
        kuberca.web.kill9()
        killed_at = time.monotonic()
        time.sleep(1)  # senders meet a closed port meanwhile
        kuberca.start_web()
        down_for = time.monotonic() - killed_at
        outcomes = [future.result(timeout=90) for future in futures]

    assert stored_before < DELIVERIES * ALERTS_PER_DELIVERY
    assert all(o.delivered for o in outcomes), [
        o.attempts for o in outcomes if not o.delivered
    ]
    retried = [o for o in outcomes if len(o.attempts) > 1]
    assert retried, f"no sender met the outage ({down_for:.1f} s)"
    assert not [o for o in outcomes if 500 in o.attempts]
    expected = {
        f"web{n:03d}-{k}": 1
        for n in range(DELIVERIES)
        for k in range(ALERTS_PER_DELIVERY)
    }
    assert alert_counts(db) == expected
    assert db.value("SELECT count(*) FROM incidents_incident") == 10
    assert (
        db.value("SELECT count(*) FROM alerts_alertanalysis")
        == DELIVERIES * ALERTS_PER_DELIVERY
    )
