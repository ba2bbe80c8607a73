"""Concurrent deliveries of the same alerts agree on one row and one incident."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.reliability.checks import alert_counts
from tests.reliability.live import AlertmanagerSender, Kuberca, alert, payload

pytestmark = pytest.mark.reliability

CONCURRENCY = 50


def _post_all(kuberca: Kuberca, bodies: list[bytes]) -> list[int | str | None]:
    sender = AlertmanagerSender(kuberca.webhook_url, deadline=30)
    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        outcomes = list(pool.map(sender.deliver, bodies))
    return [outcome.final for outcome in outcomes]


def test_fifty_identical_deliveries_store_one_alert_in_one_incident(
    kuberca: Kuberca,
) -> None:
    body = payload(
        [alert(f"same{n:02d}", namespace="checkout") for n in range(3)],
    )
    assert _post_all(kuberca, [body] * CONCURRENCY) == [200] * CONCURRENCY

    db = kuberca.database
    assert alert_counts(db) == {f"same{n:02d}": 1 for n in range(3)}
    assert db.value("SELECT count(*) FROM incidents_incident") == 1
    assert db.value("SELECT count(*) FROM alerts_webhookdelivery") == CONCURRENCY
    assert (
        db.value("SELECT count(*) FROM alerts_alertanalysis WHERE status = 'firing'")
        == 3
    )


def test_fifty_different_deliveries_for_one_group_open_one_incident(
    kuberca: Kuberca,
) -> None:
    bodies = [
        payload([alert(f"diff{n:02d}", namespace="payments")])
        for n in range(CONCURRENCY)
    ]
    assert _post_all(kuberca, bodies) == [200] * CONCURRENCY

    db = kuberca.database
    assert alert_counts(db) == {f"diff{n:02d}": 1 for n in range(CONCURRENCY)}
    assert db.value("SELECT count(*) FROM incidents_incident") == 1
    assert db.value("SELECT count(DISTINCT incident_id) FROM alerts_alert") == 1
    roots = db.value(
        "SELECT count(*) FROM notifications_slackmessage WHERE kind = 'incident_root'"
    )
    assert roots == 1
