"""A real Alertmanager delivers to a live kuberca (gunicorn) on loopback.

kuberca runs as its own process on the test database; Alertmanager gets alerts
through its API and posts webhooks with a bearer token, as in production.
"""

import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.models import Alert, WebhookDelivery
from incidents.models import Incident
from kuberca.testing import live
from tests.e2e.alertmanager import RunningAlertmanager, find_alertmanager

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        find_alertmanager() is None,
        reason="no Alertmanager binary; run .ci/install-alertmanager.sh "
        "or set ALERTMANAGER_BIN",
    ),
]

TOKEN = "e2e-webhook-token"


@pytest.fixture
def kuberca_url(transactional_db, tmp_path: Path) -> Iterator[str]:  # noqa: ANN001
    port = live.free_port()
    env = {
        **os.environ,
        "DATABASE_URL": live.database_url(),
        "WEBHOOK_AUTH_TOKEN": TOKEN,
        "ALLOWED_HOSTS": "*",
        "SLACK_BOT_TOKEN": "",
        "AGENT_ENABLED": "false",
    }
    log_path = tmp_path / "gunicorn.log"
    process = live.spawn(
        live.gunicorn_command(port=port, workers=1, config=False),
        env=env,
        log_path=log_path,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        live.wait_healthy(url, process, timeout=30, log_path=log_path, every=0.1)
        yield url
    finally:
        # SIGINT: gunicorn's quick shutdown.
        live.stop(process, timeout=10, sig=signal.SIGINT)


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_alertmanager_deliveries_become_incidents_and_resolve(
    kuberca_url: str, tmp_path: Path
) -> None:
    webhook = f"{kuberca_url}/webhook/alertmanager"
    with RunningAlertmanager(
        webhook, tmp_path=tmp_path / "am", bearer_token=TOKEN
    ) as am:
        start = datetime.now(UTC) - timedelta(seconds=5)
        pods = [
            {
                "labels": {
                    "alertname": "KubePodCrashLooping",
                    "namespace": "shop",
                    "pod": f"cart-{i}",
                    "severity": "warning" if i else "critical",
                },
                "annotations": {"summary": "Pods of cart crash-loop"},
                "startsAt": start,
                "endsAt": start + timedelta(hours=1),
            }
            for i in range(3)
        ]
        other = {
            "labels": {
                "alertname": "TargetDown",
                "namespace": "monitoring",
                "severity": "warning",
            },
            "startsAt": start,
            "endsAt": start + timedelta(hours=1),
        }
        am.push_alerts([*pods, other])

        wait_for(lambda: Alert.objects.count() == 4, "four alerts")
        wait_for(lambda: Incident.objects.count() == 2, "two incidents")
        shop = Incident.objects.get(group_key="cluster=,namespace=shop")
        assert shop.title == "Pods of cart crash-loop"
        assert shop.severity == "critical" and shop.status == "firing"
        assert shop.alerts.count() == 3
        delivery = WebhookDelivery.objects.filter(outcome="processed").first()
        assert delivery is not None
        assert "authorization" not in {k.lower() for k in delivery.headers}
        assert delivery.headers.get("User-Agent", "").startswith("Alertmanager/")

        ended = datetime.now(UTC) - timedelta(seconds=1)
        am.push_alerts([{**pod, "endsAt": ended} for pod in pods])

        def shop_resolved() -> bool:
            shop.refresh_from_db()
            return shop.status == "resolved"

        wait_for(shop_resolved, "the shop incident to resolve")
        assert shop.resolved_by == "alertmanager"
        assert set(shop.alerts.values_list("status", flat=True)) == {"resolved"}
        monitoring = Incident.objects.get(group_key="cluster=,namespace=monitoring")
        assert monitoring.status == "firing"
        assert Alert.objects.count() == 4
        # Every delivery was accepted: none was refused or failed.
        assert not WebhookDelivery.objects.exclude(outcome="processed").exists()
