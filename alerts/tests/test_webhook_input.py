"""Bad bodies, limits and webhook security (SPEC §3.1, §10)."""

import base64
import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime

import pytest
from django.db import DatabaseError, DataError, OperationalError

from alerts.models import Alert, WebhookDelivery
from alerts.payload import REJECTIONS_LISTED
from alerts.tests.webhook_helpers import make_alert, make_payload

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"alerts": [', "malformed JSON"),
        # Bytes that are not UTF-8 in the groupKey, as anywhere in the envelope.
        (b'{"groupKey": "a\xff", "alerts": []}', "malformed JSON"),
        (b"[]", "JSON object"),
        (b'"text"', "JSON object"),
        (b'{"alerts": {"a": 1}}', "`alerts` must be a list"),
        (b'{"status": "firing"}', "`alerts` is missing"),
    ],
)
def test_body_that_is_not_a_payload_is_400_and_kept(post_webhook, body, detail) -> None:  # noqa: ANN001
    response = post_webhook(body)
    assert response.status_code == 400
    answer = response.json()
    assert answer["error"] == "invalid payload"
    assert detail in answer["detail"]
    delivery = WebhookDelivery.objects.get()
    assert delivery.outcome == "rejected" and bytes(delivery.body) == body
    assert not Alert.objects.exists()


@pytest.mark.parametrize(
    "envelope",
    [
        b'"commonLabels": {"x": 1e400}',
        b'"groupLabels": {"x": -1e999}',
        b'"commonAnnotations": {"a": 1e400}',
        b'"version": 1e400',
        b'"externalURL": 1e400',
        b'"status": 1e400, "receiver": -1e400',
        b'"truncatedAlerts": 1e400',
    ],
)
def test_a_number_out_of_range_in_the_envelope_costs_no_alert(
    post_webhook,  # noqa: ANN001
    envelope,  # noqa: ANN001
) -> None:
    alert = json.dumps(make_alert(fingerprint="env1")).encode()
    body = b'{"alerts": [' + alert + b"], " + envelope + b"}"

    response = post_webhook(body)

    assert response.status_code == 200, response.content
    assert response.json()["stored"] == 1
    assert Alert.objects.get().fingerprint == "env1"
    assert WebhookDelivery.objects.get().truncated_alerts == 0


@pytest.mark.parametrize(
    ("sent", "recorded"),
    [
        ('"' + "9" * 5000 + '"', 2**31 - 1),
        ('"' + "0" * 5000 + '7"', 7),
        ('"12"', 12),
        ("-3", 0),
        ('"-3"', 0),
    ],
)
def test_a_truncated_count_of_any_length_is_recorded(
    post_webhook, sent, recorded
) -> None:  # noqa: ANN001
    alert = json.dumps(make_alert(fingerprint="tr1")).encode()
    body = b'{"alerts": [' + alert + b'], "truncatedAlerts": ' + sent.encode() + b"}"

    response = post_webhook(body)

    assert response.status_code == 200, response.content
    assert WebhookDelivery.objects.get().truncated_alerts == recorded


def test_a_byte_order_mark_before_the_body_is_passed_over(post_webhook) -> None:  # noqa: ANN001
    body = "\ufeff".encode() + json.dumps(make_payload(make_alert())).encode()

    response = post_webhook(body)

    assert response.status_code == 200, response.content
    assert response.json()["stored"] == 1
    assert bytes(WebhookDelivery.objects.get().body) == body


def test_a_receiver_url_with_a_trailing_slash_is_the_webhook(client) -> None:  # noqa: ANN001
    body = json.dumps(make_payload(make_alert("Slashed"))).encode()

    response = client.post(
        "/webhook/alertmanager/", data=body, content_type="application/json"
    )

    assert response.status_code == 200
    assert response.json()["stored"] == 1
    assert list(Alert.objects.values_list("alarm_title", flat=True)) == ["Slashed"]
    assert bytes(WebhookDelivery.objects.get().body) == body


def test_bad_alerts_are_rejected_and_the_others_kept(post_webhook) -> None:  # noqa: ANN001
    no_labels = make_alert("A")
    del no_labels["labels"]
    bad_start = make_alert("B")
    bad_start["startsAt"] = 12345
    bad_time = make_alert("C")
    bad_time["startsAt"] = "not a time"
    bad_status = make_alert("D", status="pending")
    good = make_alert("E")
    payload = make_payload(no_labels, bad_start, bad_time, bad_status, good)
    response = post_webhook(payload)
    assert response.status_code == 200
    answer = response.json()
    assert answer["alertCount"] == 5 and answer["stored"] == 1
    assert [r["index"] for r in answer["rejected"]] == [0, 1, 2, 3]
    assert "labels" in answer["rejected"][0]["reason"]
    assert "startsAt" in answer["rejected"][1]["reason"]
    assert "startsAt" in answer["rejected"][2]["reason"]
    assert "status" in answer["rejected"][3]["reason"]
    assert list(Alert.objects.values_list("alarm_title", flat=True)) == ["E"]
    assert WebhookDelivery.objects.get().rejected == 4


def test_bad_alerts_past_the_listed_ones_are_counted_not_listed(post_webhook) -> None:  # noqa: ANN001
    bad = REJECTIONS_LISTED + 500
    payload = make_payload(make_alert("Kept"))
    payload["alerts"] = [{}] * bad + payload["alerts"]

    response = post_webhook(payload)

    assert response.status_code == 200
    answer = response.json()
    assert answer["alertCount"] == bad + 1 and answer["stored"] == 1
    listed = [r["index"] for r in answer["rejected"]]
    assert listed == list(range(REJECTIONS_LISTED))
    delivery = WebhookDelivery.objects.get()
    assert delivery.rejected == bad
    assert [r["index"] for r in delivery.rejections] == listed
    assert list(Alert.objects.values_list("alarm_title", flat=True)) == ["Kept"]


def test_oversized_body_is_413_and_recorded(post_webhook, settings) -> None:  # noqa: ANN001
    settings.WEBHOOK_MAX_BYTES = 2048
    payload = make_payload(make_alert(summary="x" * 4000))
    response = post_webhook(payload)
    assert response.status_code == 413
    assert response.json()["error"] == "payload too large"
    delivery = WebhookDelivery.objects.get()
    assert delivery.outcome == "rejected" and delivery.http_status == 413
    assert delivery.body_truncated and delivery.body_size > 2048
    assert response.json()["detail"] == (
        f"body of {delivery.body_size} bytes is over the limit of 2048 bytes"
    )
    assert not Alert.objects.exists()


def test_oversized_body_keeps_its_first_64_kib(post_webhook, settings) -> None:  # noqa: ANN001
    settings.WEBHOOK_MAX_BYTES = 1024 * 1024
    body = json.dumps(make_payload(make_alert(summary="z" * 2 * 1024 * 1024))).encode()

    response = post_webhook(body)

    assert response.status_code == 413
    delivery = WebhookDelivery.objects.get()
    assert bytes(delivery.body) == body[: 64 * 1024]
    assert delivery.body_size == len(body)


def test_body_declared_over_the_limit_is_413_even_when_fewer_bytes_came(
    settings,  # noqa: ANN001
) -> None:
    from alerts.services import delivery_ingest

    settings.WEBHOOK_MAX_BYTES = 2048
    body = json.dumps(make_payload(make_alert())).encode()

    result = delivery_ingest(
        body=body, headers={"Content-Length": "4096"}, source_address=None
    )

    assert result.http_status == 413
    assert result.detail == "body of 4096 bytes is over the limit of 2048 bytes"
    assert WebhookDelivery.objects.get().body_size == 4096
    assert not Alert.objects.exists()


def test_body_above_django_default_upload_limit_is_read(post_webhook) -> None:  # noqa: ANN001
    alerts = [make_alert(f"A{i}", summary="y" * 35000) for i in range(100)]
    response = post_webhook(make_payload(*alerts))  # about 3.5 MB
    assert response.status_code == 200, response.content[:200]
    assert response.json()["stored"] == 100


def test_wrong_or_missing_token_is_401(post_webhook, settings) -> None:  # noqa: ANN001
    settings.WEBHOOK_AUTH_TOKEN = "tok-123"
    payload = make_payload(make_alert())
    assert post_webhook(payload).status_code == 401
    response = post_webhook(payload, Authorization="Bearer nope")
    assert response.status_code == 401 and response.json() == {"error": "unauthorized"}
    assert not Alert.objects.exists()
    assert post_webhook(payload, Authorization="Bearer tok-123").status_code == 200


def test_basic_auth_with_the_token_as_password_is_accepted(
    post_webhook, settings
) -> None:  # noqa: ANN001
    settings.WEBHOOK_AUTH_TOKEN = "tok-123"
    good = base64.b64encode(b"alertmanager:tok-123").decode()
    bad = base64.b64encode(b"alertmanager:tok-124").decode()
    payload = make_payload(make_alert())
    assert post_webhook(payload, Authorization=f"Basic {bad}").status_code == 401
    assert post_webhook(payload, Authorization=f"Basic {good}").status_code == 200


def test_token_under_another_scheme_or_as_user_name_is_401(
    post_webhook,  # noqa: ANN001
    settings,  # noqa: ANN001
) -> None:
    settings.WEBHOOK_AUTH_TOKEN = "tok-123"
    as_user = base64.b64encode(b"tok-123:").decode()
    payload = make_payload(make_alert())

    for header in ["Token tok-123", "tok-123", f"Basic {as_user}", "Bearer tok"]:
        assert post_webhook(payload, Authorization=header).status_code == 401, header
    assert not Alert.objects.exists()


def test_bearer_token_with_extra_spaces_is_accepted(post_webhook, settings) -> None:  # noqa: ANN001
    settings.WEBHOOK_AUTH_TOKEN = "tok-123"
    payload = make_payload(make_alert())
    assert post_webhook(payload, Authorization="bearer  tok-123").status_code == 200


def test_hmac_signature_in_upper_case_hex_is_accepted(post_webhook, settings) -> None:  # noqa: ANN001
    settings.WEBHOOK_HMAC_SECRET = "s3cret"
    body = json.dumps(make_payload(make_alert())).encode()
    signature = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest().upper()

    response = post_webhook(body, X_Webhook_Signature="SHA256=" + signature)

    assert response.status_code == 200


def test_part_of_the_hmac_signature_is_401(post_webhook, settings) -> None:  # noqa: ANN001
    settings.WEBHOOK_HMAC_SECRET = "s3cret"
    body = json.dumps(make_payload(make_alert())).encode()
    signature = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()

    for sent in [signature[:8], signature[:-1], signature + "0"]:
        assert post_webhook(body, X_Webhook_Signature=sent).status_code == 401, sent
    assert not Alert.objects.exists()


def test_hmac_signature_is_checked(post_webhook, settings) -> None:  # noqa: ANN001
    settings.WEBHOOK_HMAC_SECRET = "s3cret"
    body = json.dumps(make_payload(make_alert())).encode()
    signature = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert post_webhook(body).status_code == 401
    assert post_webhook(body, X_Webhook_Signature="sha256=" + "0" * 64).status_code == (
        401
    )
    assert not Alert.objects.exists()
    response = post_webhook(body, X_Webhook_Signature="sha256=" + signature)
    assert response.status_code == 200
    assert post_webhook(body, X_Webhook_Signature=signature).status_code == 200


def test_stored_headers_leave_secrets_out(post_webhook, settings) -> None:  # noqa: ANN001
    settings.WEBHOOK_AUTH_TOKEN = "tok-123"
    post_webhook(
        make_payload(make_alert()),
        Authorization="Bearer tok-123",
        Cookie="session=abc",
        User_Agent="Alertmanager/0.25.0",
    )
    headers = {k.lower(): v for k, v in WebhookDelivery.objects.get().headers.items()}
    assert headers["user-agent"] == "Alertmanager/0.25.0"
    assert "authorization" not in headers and "cookie" not in headers
    assert "tok-123" not in json.dumps(headers)


def test_stored_headers_leave_the_signature_out(post_webhook, settings) -> None:  # noqa: ANN001
    settings.WEBHOOK_HMAC_SECRET = "s3cret"
    body = json.dumps(make_payload(make_alert())).encode()
    signature = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()

    response = post_webhook(body, X_Webhook_Signature="sha256=" + signature)

    assert response.status_code == 200
    headers = {k.lower() for k in WebhookDelivery.objects.get().headers}
    assert "content-type" in headers
    assert "x-webhook-signature" not in headers
    assert signature not in json.dumps(WebhookDelivery.objects.get().headers)


def test_answer_counts_the_slack_notifications_enqueued(post_webhook, settings) -> None:  # noqa: ANN001
    settings.SLACK_ENABLED, settings.SLACK_CHANNEL_ID = True, "C0"
    opening = make_payload(make_alert("A", fingerprint="s1"), make_alert("B"))

    first = post_webhook(opening).json()
    repeat = post_webhook(opening).json()

    # One root message for the new incident, one per new firing alert.
    assert (first["slackSent"], first["slackFailed"]) == (3, 0)
    assert (repeat["slackSent"], repeat["duplicates"]) == (0, 2)


def test_rate_limit_answers_503_with_retry_after(post_webhook, settings) -> None:  # noqa: ANN001
    settings.WEBHOOK_RATE_LIMIT = 2
    payload = make_payload(make_alert())
    assert post_webhook(payload).status_code == 200
    assert post_webhook(payload).status_code == 200
    response = post_webhook(payload)
    assert response.status_code == 503
    assert 1 <= int(response["Retry-After"]) <= 60
    assert WebhookDelivery.objects.count() == 2


def test_rate_limit_asks_to_wait_until_the_minute_ends(settings) -> None:  # noqa: ANN001
    from alerts.services import webhook_rate_check

    settings.WEBHOOK_RATE_LIMIT = 1
    now = datetime(2026, 12, 3, 16, 0, 45, 500000, tzinfo=UTC)

    first = webhook_rate_check(client="192.0.2.1", now=now)
    second = webhook_rate_check(client="192.0.2.1", now=now)

    assert (first, second) == (None, 15)


def test_rate_limit_counts_each_client_apart(client, settings) -> None:  # noqa: ANN001
    settings.WEBHOOK_RATE_LIMIT = 1
    body = json.dumps(make_payload(make_alert()))

    def post(address: str) -> int:
        return client.post(
            "/webhook/alertmanager",
            data=body,
            content_type="application/json",
            REMOTE_ADDR=address,
        ).status_code

    assert [post("192.0.2.1"), post("192.0.2.2")] == [200, 200]
    assert [post("192.0.2.1"), post("192.0.2.2")] == [503, 503]


def test_rate_limit_counts_no_request_without_the_token(post_webhook, settings) -> None:  # noqa: ANN001
    settings.WEBHOOK_AUTH_TOKEN = "tok-123"
    settings.WEBHOOK_RATE_LIMIT = 2
    payload = make_payload(make_alert())

    refused = [post_webhook(payload).status_code for _ in range(5)]
    response = post_webhook(payload, Authorization="Bearer tok-123")

    assert refused == [401] * 5
    assert response.status_code == 200


def test_rate_limit_counts_no_request_without_a_signature(
    post_webhook,  # noqa: ANN001
    settings,  # noqa: ANN001
) -> None:
    settings.WEBHOOK_HMAC_SECRET = "s3cret"
    settings.WEBHOOK_RATE_LIMIT = 2
    body = json.dumps(make_payload(make_alert())).encode()
    signature = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()

    refused = [post_webhook(body).status_code for _ in range(5)]
    wrong = post_webhook(body, X_Webhook_Signature="sha256=" + "0" * 64)
    response = post_webhook(body, X_Webhook_Signature=signature)

    assert refused == [401] * 5
    # A wrong signature is seen only once the body was read: it counts.
    assert wrong.status_code == 401
    assert response.status_code == 200
    assert post_webhook(body, X_Webhook_Signature=signature).status_code == 503


def test_rate_check_without_a_database_answers_503_with_retry_after(
    post_webhook,  # noqa: ANN001
    settings,  # noqa: ANN001
    monkeypatch,  # noqa: ANN001
) -> None:
    settings.WEBHOOK_RATE_LIMIT = 2

    def unreachable(**kwargs: object) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr("alerts.webhook.webhook_rate_check", unreachable)
    response = post_webhook(make_payload(make_alert()))

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["detail"] == "database unavailable"
    assert not WebhookDelivery.objects.exists()


def test_forwarded_for_is_used_only_from_trusted_proxies(
    post_webhook, settings
) -> None:  # noqa: ANN001
    payload = make_payload(make_alert())
    post_webhook(payload, X_Forwarded_For="203.0.113.9")
    assert WebhookDelivery.objects.get().source_address == "127.0.0.1"
    settings.TRUSTED_PROXIES = ["127.0.0.0/8", "10.0.0.5"]
    post_webhook(payload, X_Forwarded_For="203.0.113.9, 10.0.0.5")
    assert WebhookDelivery.objects.order_by("-pk")[0].source_address == "203.0.113.9"


def test_forwarded_for_is_used_from_a_trusted_proxy_seen_on_a_dual_stack_socket(
    client,  # noqa: ANN001
    settings,  # noqa: ANN001
) -> None:
    # Bound to `::` (HOST), gunicorn gives an IPv4 peer as ::ffff:a.b.c.d.
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    for peer, client_ip in [
        ("::ffff:10.0.0.5", "203.0.113.9"),
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
    ]:
        client.post(
            "/webhook/alertmanager",
            data=json.dumps(make_payload(make_alert())),
            content_type="application/json",
            REMOTE_ADDR=peer,
            HTTP_X_FORWARDED_FOR="203.0.113.9",
        )
        delivery = WebhookDelivery.objects.order_by("-pk")[0]
        assert delivery.source_address == client_ip


@pytest.mark.parametrize(
    ("forwarded", "source"),
    [
        # A client's own X-Forwarded-For entries are left of the proxy's.
        ("198.51.100.7, 203.0.113.9, 10.0.0.5", "203.0.113.9"),
        ("2001:db8::7", "2001:db8::7"),
        ("[2001:db8::7]:443", "2001:db8::7"),
        ("203.0.113.9:5000", "203.0.113.9"),
        ("not-an-address", "10.0.0.5"),
    ],
)
def test_forwarded_for_is_read_from_the_right_past_trusted_proxies(
    client,  # noqa: ANN001
    settings,  # noqa: ANN001
    forwarded: str,
    source: str,
) -> None:
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]

    assert _source_recorded(client, "10.0.0.5", forwarded) == source


def test_forwarded_for_from_a_peer_that_is_not_a_trusted_proxy_is_ignored(
    client,  # noqa: ANN001
    settings,  # noqa: ANN001
) -> None:
    settings.TRUSTED_PROXIES = ["10.0.0.5"]

    assert _source_recorded(client, "192.0.2.1", "203.0.113.9") == "192.0.2.1"


def _source_recorded(client, peer: str, forwarded: str) -> str:  # noqa: ANN001
    """The source address the delivery from `peer` is recorded with."""
    client.post(
        "/webhook/alertmanager",
        data=json.dumps(make_payload(make_alert())),
        content_type="application/json",
        REMOTE_ADDR=peer,
        HTTP_X_FORWARDED_FOR=forwarded,
    )
    return WebhookDelivery.objects.get().source_address


def test_get_is_not_allowed(client) -> None:  # noqa: ANN001
    response = client.get("/webhook/alertmanager")
    assert response.status_code == 405


@pytest.mark.parametrize(
    ("error", "level", "traceback"),
    [
        # An outage logs one line a delivery, Alertmanager retrying them all.
        (OperationalError("connection lost"), logging.WARNING, False),
        (DataError("value out of range"), logging.ERROR, True),
    ],
)
def test_database_failure_is_503_and_recorded(  # noqa: PLR0913
    post_webhook,  # noqa: ANN001
    monkeypatch,  # noqa: ANN001
    caplog,  # noqa: ANN001
    error: DatabaseError,
    level: int,
    traceback: bool,
) -> None:
    def broken(*args: object) -> None:
        raise error

    monkeypatch.setattr("alerts.services._process", broken)
    with caplog.at_level(logging.WARNING, logger="alerts.services"):
        response = post_webhook(make_payload(make_alert()))
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["error"] == "service unavailable"
    delivery = WebhookDelivery.objects.get()
    assert delivery.outcome == "failed" and str(error) in delivery.error
    (record,) = [r for r in caplog.records if "webhook delivery failed" in r.message]
    assert record.levelno == level
    assert bool(record.exc_info) is traceback
    assert f"delivery_id={delivery.pk}" in record.message
