"""Webhook edge cases: bodies, signatures, migrations and races that once failed.

Found by an adversarial review: a huge alertname, a declared size of 2 GiB,
an unsigned over-limit body, a column type changed under prepared statements,
an auto-resolve racing a delivery of another group, and deliveries a request
left unprocessed.
"""

import random
import string
import threading
import time
import uuid
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from alerts import services
from alerts.models import Alert, WebhookDelivery
from alerts.services import delivery_ingest
from alerts.tests.webhook_helpers import ingest, make_alert, make_payload
from incidents.models import Incident
from kuberca.testing.concurrency import wait_for_lock_wait


@pytest.mark.django_db
def test_alertname_too_long_for_tsvector_costs_only_its_own_alert() -> None:
    """SPEC §3.1: one bad alert does not cost the others; never 503 for a body that
    can never succeed. The GIN index on to_tsvector(alarm_title) raises 54000 for an
    alertname of > 1 MB of distinct words: the whole delivery is 503, for ever."""
    rng = random.Random(7)
    words = " ".join(
        "".join(rng.choices(string.ascii_lowercase, k=9)) for _ in range(130_000)
    )
    payload = make_payload(
        make_alert("Fine", fingerprint="good-1"),
        make_alert(words, fingerprint="bad-1", namespace="other"),
    )
    result = ingest(payload)
    assert result.http_status == 200, (result.http_status, result.error)
    assert Alert.objects.filter(fingerprint="good-1").exists()


@pytest.mark.django_db
def test_oversize_body_declaring_2_gib_or_more_is_413_and_recorded(settings) -> None:  # noqa: ANN001
    """SPEC §3.1: over WEBHOOK_MAX_BYTES -> 413 with the delivery recorded. The declared
    Content-Length goes into body_size (int4): >= 2**31 overflows -> 503, no row."""
    body = b"{" + b" " * (settings.WEBHOOK_MAX_BYTES + 1)
    result = delivery_ingest(
        body=body, headers={"Content-Length": str(2**31)}, source_address=None
    )
    assert result.http_status == 413, (result.http_status, result.error)
    assert WebhookDelivery.objects.filter(http_status=413).count() == 1


@pytest.mark.django_db
def test_oversize_body_without_signature_is_401_when_hmac_is_set(
    client, settings
) -> None:  # noqa: ANN001
    """SPEC §10: WEBHOOK_HMAC_SECRET set -> wrong or missing signature is 401. An
    over-limit body skips the check: 413, and its first 64 KiB are stored."""
    settings.WEBHOOK_HMAC_SECRET = "s3cret"
    body = b'{"alerts":[' + b" " * settings.WEBHOOK_MAX_BYTES + b"]}"
    response = client.post(
        "/webhook/alertmanager", data=body, content_type="application/json"
    )
    assert response.status_code == 401, response.status_code
    assert not WebhookDelivery.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_statement_result_type_change_does_not_fail_deliveries() -> None:
    """A migration changing the type of a column a prepared statement returns (widen
    incidents.severity) makes EXECUTE fail with 0A000 'cached plan must not change
    result type'; prepared.py retries only 26000, so every delivery with a new alert
    on a kept connection is 503 until CONN_MAX_AGE recycles it."""
    assert ingest(make_payload(make_alert(fingerprint="t1"))).http_status == 200
    params = connection.get_connection_params()
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute(
            "ALTER TABLE incidents_incident ALTER COLUMN severity TYPE varchar(40)"
        )
    try:
        result = ingest(make_payload(make_alert(fingerprint="t2", namespace="n2")))
        assert result.http_status == 200, (result.http_status, result.error)
    finally:
        connection.close()
        with psycopg.connect(**params, autocommit=True) as other:
            other.execute(
                "ALTER TABLE incidents_incident ALTER COLUMN severity TYPE varchar(32)"
            )


def _buckets(group_key: str, fingerprint: str) -> set[int]:
    return set(
        services._lock_hashes(group_keys=[group_key], fingerprints=[fingerprint])
    )


@pytest.mark.django_db(transaction=True)
def test_auto_resolve_never_resolves_an_incident_a_concurrent_delivery_joined() -> None:
    """SPEC §3.2/§3.3: concurrent deliveries give the state of one at a time; an
    incident auto-resolves only when every alert of it is resolved.

    X (namespace nsx) holds firing alert `a`, moved there by a person from nsy.
    Delivery B (new firing alert of nsx) locks X and joins it; delivery A resolves `a`
    meanwhile. Their advisory locks differ (g:nsy vs g:nsx), A's _INCIDENT_STATE does
    not see B's uncommitted alert, and incident_resolve() waits for B's lock, then
    resolves X without looking again. A side session holding B's (fingerprint,
    fired_at) uncommitted makes B wait inside its upsert, to fix the interleaving.
    """
    now = timezone.now()
    t_old, t_new = now - timedelta(minutes=5), now - timedelta(minutes=1)
    while True:
        run = uuid.uuid4().hex[:6]
        nsx, nsy = f"x{run}", f"y{run}"
        a_locks = _buckets(f"cluster=,namespace={nsy}", f"a{run}")
        b_locks = _buckets(f"cluster=,namespace={nsx}", f"b{run}")
        if not a_locks & b_locks:
            break
    ingest(
        make_payload(
            make_alert("X", namespace=nsx, fingerprint=f"x{run}", starts_at=t_old)
        )
    )
    ingest(
        make_payload(
            make_alert("Y", namespace=nsy, fingerprint=f"a{run}", starts_at=t_old)
        )
    )
    x = Alert.objects.get(fingerprint=f"x{run}").incident_id
    a = Alert.objects.get(fingerprint=f"a{run}")
    services.alert_move(alert_id=a.pk, incident_id=x, moved_by="oncall")
    ingest(
        make_payload(
            make_alert(
                "X",
                namespace=nsx,
                fingerprint=f"x{run}",
                starts_at=t_old,
                status="resolved",
                ends_at=now,
            )
        )
    )
    assert Incident.objects.get(pk=x).status == "firing"

    params = connection.get_connection_params()
    side = psycopg.connect(**params)
    side.execute(
        """INSERT INTO alerts_alert (alert_id, fingerprint, alarm_title, severity,
            status, fired_at, labels, annotations, generator_url, group_key,
            analysis_summary, analysis_detail, thread_ts, grouping_reason, is_enabled,
            resolved_as_stale, last_seen_at, created_at, updated_at)
        VALUES ('ALR-side0000', %s, '', 'warning', 'resolved', %s, '{}', '{}', '', '',
            '', '', '', '', true, false, now(), now(), now())""",
        [f"b{run}", t_new],
    )
    results = {}

    def deliver(name: str, payload: dict) -> None:
        try:
            results[name] = ingest(payload).http_status
        finally:
            connection.close()

    b = threading.Thread(
        target=deliver,
        args=(
            "b",
            make_payload(
                make_alert("X", namespace=nsx, fingerprint=f"b{run}", starts_at=t_new)
            ),
        ),
    )
    b.start()
    if not wait_for_lock_wait(params, "%upsert_alerts%", tries=200):
        side.rollback()
        pytest.fail("delivery B never waited inside its upsert")
    resolver = threading.Thread(
        target=deliver,
        args=(
            "a",
            make_payload(
                make_alert(
                    "Y",
                    namespace=nsy,
                    fingerprint=f"a{run}",
                    starts_at=t_old,
                    status="resolved",
                    ends_at=timezone.now(),
                )
            ),
        ),
    )
    resolver.start()
    time.sleep(1.0)
    side.rollback()
    side.close()
    resolver.join(30)
    b.join(30)
    assert results == {"a": 200, "b": 200}
    firing_in_x = Alert.objects.filter(incident_id=x, status="firing").count()
    status = Incident.objects.get(pk=x).status
    assert not (status == "resolved" and firing_in_x), (status, firing_in_x)


def post_signed(client, body: bytes, signature: str | None = None):  # noqa: ANN001, ANN201
    """POST `body` with its HMAC under "s3cret", or with `signature`."""
    import hashlib
    import hmac

    signature = signature or hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    return client.post(
        "/webhook/alertmanager",
        data=body,
        content_type="application/json",
        headers={"X-Webhook-Signature": f"sha256={signature}"},
    )


@pytest.mark.django_db
def test_oversize_body_with_a_good_signature_is_413_and_recorded(
    client, settings
) -> None:  # noqa: ANN001
    settings.WEBHOOK_HMAC_SECRET = "s3cret"
    body = b'{"alerts":[' + b" " * settings.WEBHOOK_MAX_BYTES + b"]}"
    assert post_signed(client, body).status_code == 413
    delivery = WebhookDelivery.objects.get()
    assert delivery.body_truncated and delivery.http_status == 413
    assert post_signed(client, body, "0" * 64).status_code == 401
    assert WebhookDelivery.objects.count() == 1


@pytest.mark.django_db
def test_signed_body_declared_past_four_times_the_limit_is_413_unread(
    client, settings
) -> None:  # noqa: ANN001
    settings.WEBHOOK_HMAC_SECRET = "s3cret"
    settings.WEBHOOK_MAX_BYTES = 1000
    response = post_signed(client, b'{"alerts":[' + b" " * 4000 + b"]}")
    assert response.status_code == 413
    assert response.json()["detail"] == (
        "body is over 4000 bytes, too large to check its signature"
    )
    assert not WebhookDelivery.objects.exists()


@pytest.mark.django_db
def test_deliveries_left_received_are_closed_as_failed() -> None:
    from alerts.services import ABANDONED_AFTER, deliveries_close_abandoned
    from alerts.tasks import close_abandoned_deliveries

    ingest(make_payload(make_alert(fingerprint="h1")))
    now = timezone.now()
    old, recent = (
        WebhookDelivery.objects.create(outcome="received", body=b"{}") for _ in range(2)
    )
    WebhookDelivery.objects.filter(pk=old.pk).update(
        received_at=now - ABANDONED_AFTER - timedelta(seconds=1)
    )
    assert close_abandoned_deliveries.call() == 1
    old.refresh_from_db()
    recent.refresh_from_db()
    assert old.outcome == "failed" and "never processed" in old.error
    assert old.processed_at is not None
    assert recent.outcome == "received"
    assert WebhookDelivery.objects.filter(outcome="processed").count() == 1
    assert deliveries_close_abandoned() == 0
