"""Concurrent deliveries end in the state one delivery gives (SPEC §3.2)."""

import json
import threading

import pytest
from django.db import connection
from django.test import Client

from alerts.models import Alert, WebhookDelivery
from alerts.tests.webhook_helpers import make_alert, make_payload
from incidents.models import Incident

pytestmark = pytest.mark.django_db(transaction=True)


def post_from_threads(bodies: list[bytes]) -> list[int]:
    statuses: list[int] = []
    barrier = threading.Barrier(len(bodies))
    lock = threading.Lock()

    def send(body: bytes) -> None:
        try:
            barrier.wait()
            response = Client().post(
                "/webhook/alertmanager", data=body, content_type="application/json"
            )
            with lock:
                statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(b,)) for b in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return statuses


def test_twenty_copies_posted_at_once_make_one_alert_and_incident() -> None:
    body = json.dumps(
        make_payload(make_alert("A", fingerprint="c1"), make_alert("B"))
    ).encode()
    statuses = post_from_threads([body] * 20)
    assert statuses == [200] * 20
    assert Alert.objects.count() == 2
    assert Incident.objects.count() == 1
    assert WebhookDelivery.objects.filter(outcome="processed").count() == 20
    assert sum(WebhookDelivery.objects.values_list("stored", flat=True)) == 2


def test_concurrent_deliveries_of_one_group_share_one_incident() -> None:
    bodies = [
        json.dumps(make_payload(make_alert(f"A{i}", fingerprint=f"g{i}"))).encode()
        for i in range(8)
    ]
    statuses = post_from_threads(bodies)
    assert statuses == [200] * 8
    assert Alert.objects.count() == 8
    incident = Incident.objects.get()
    assert incident.alerts.count() == 8
