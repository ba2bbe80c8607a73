"""Hostile webhook bodies: a clear 4xx or a partial accept (SPEC §3.1), never a 500.

SPEC §3.1 allows three answers to a body Alertmanager sent: 400 for one that is
not a payload, 200 with the bad alerts listed under `rejected`, 413 above
WEBHOOK_MAX_BYTES. A 503 is for transient failures only: Alertmanager retries
it for ever, so a 503 for a body that can never succeed is a fault too.
"""

import gzip
import json
import random
import resource
import string
from typing import Any

import pytest
from django.test import Client

from alerts.models import Alert, WebhookDelivery
from alerts.payload import NESTING_MAX
from alerts.tests.webhook_helpers import make_alert, make_payload
from incidents.models import Incident
from kuberca.testing import wsgi

pytestmark = pytest.mark.django_db

URL = "/webhook/alertmanager"
NO_500 = "a hostile body must never be a 500"


def post(body: Any, content_type: str | None = "application/json", **headers: str):  # noqa: ANN201
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    extra = {} if content_type is None else {"content_type": content_type}
    return Client().generic("POST", URL, data=data, headers=headers, **extra)


def random_text(length: int, seed: int = 7) -> str:
    # Random, so PostgreSQL cannot compress it below its index row limit.
    rng = random.Random(seed)
    return "".join(rng.choices(string.ascii_letters + string.digits, k=length))


def assert_partial_accept(response, *, stored: int, rejected: int) -> dict:  # noqa: ANN001
    assert response.status_code == 200, response.content[:300]
    answer = response.json()
    assert answer["status"] == "received"
    assert answer["stored"] == stored
    assert len(answer["rejected"]) == rejected
    return answer


def test_deeply_nested_body_that_is_not_an_object_is_400() -> None:
    response = post(b"[" * 100_000 + b"]" * 100_000)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid payload"
    assert WebhookDelivery.objects.get().outcome == "rejected"


def _nested_in(where: str, depth: int, *alerts: dict) -> bytes:
    """A payload whose first alert holds a value `depth` lists deep."""
    body = json.dumps(make_payload(*alerts)).encode()
    nested = b"[" * depth + b"]" * depth
    if where == "annotations":
        return body.replace(b'"summary": "X"', b'"deep": ' + nested, 1)
    return body.replace(b'"alertname": "Deep"', b'"alertname": ' + nested, 1)


@pytest.mark.usefixtures("plain_static_storage")
@pytest.mark.parametrize("where", ["annotations", "labels"])
def test_a_value_nested_to_the_limit_is_stored_and_shown(
    where: str,
    auth_client,  # noqa: ANN001
    staff_client,  # noqa: ANN001
) -> None:
    body = _nested_in(where, NESTING_MAX, make_alert("Deep", summary="X"))
    assert_partial_accept(post(body), stored=1, rejected=0)
    alert = Alert.objects.get()
    assert auth_client.get(f"/api/v1/alerts/{alert.alert_id}").status_code == 200
    page = staff_client.get(f"/admin/alerts/alert/{alert.pk}/change/")
    assert page.status_code == 200


@pytest.mark.parametrize("where", ["annotations", "labels"])
@pytest.mark.parametrize("depth", [NESTING_MAX + 1, 800])
def test_a_value_nested_past_the_limit_rejects_only_its_alert(
    where: str, depth: int
) -> None:
    # 800 is within what the JSON decoder takes, but storing the value would
    # recurse past Python's limit further down the stack: a 500, once. (The
    # decoder shares Python's recursion limit with the frames below it, and
    # under pytest 900 left no frame to spare.)
    good = make_alert("Good")
    body = _nested_in(where, depth, make_alert("Deep", summary="X"), good)
    answer = assert_partial_accept(post(body), stored=1, rejected=1)
    (rejection,) = answer["rejected"]
    assert rejection["index"] == 0
    assert "nested too deeply" in rejection["reason"]
    assert Alert.objects.get().alarm_title == "Good"


@pytest.mark.parametrize("where", ["annotations", "labels"])
def test_alert_nested_5000_deep_is_400_not_a_500(where: str) -> None:
    # Deeper than the decoder walks even to skip a value: the body as a whole
    # is refused (Alertmanager only sends flat string maps there).
    good = make_alert("Good")
    bad = make_alert("Bad", summary="X")
    body = json.dumps(make_payload(bad, good)).encode()
    nested = b"[" * 5000 + b"]" * 5000
    if where == "annotations":
        body = body.replace(b'"summary": "X"', b'"deep": ' + nested)
    else:
        body = body.replace(b'"alertname": "Bad"', b'"alertname": ' + nested)
    response = post(body)
    assert response.status_code == 400, NO_500
    assert response.json()["detail"] == "JSON nested too deeply"
    assert not Alert.objects.exists()


def test_one_hundred_thousand_copies_of_one_alert_make_one_row() -> None:
    alerts = [{"labels": {"alertname": "Flood"}}] * 100_000
    body = json.dumps({"status": "firing", "alerts": alerts}).encode()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    response = post(body)
    growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) * 1024
    answer = assert_partial_accept(response, stored=1, rejected=0)
    assert answer["alertCount"] == 100_000 and answer["duplicates"] == 99_999
    assert Alert.objects.count() == 1 and Incident.objects.count() == 1
    # Bounded memory: the peak grows by a small multiple of the 2.6 MB body
    # (about 110 MB measured), not by a copy of the world per alert.
    assert growth < 400 * 1024 * 1024, f"peak grew {growth / 1e6:.0f} MB"


def test_ten_thousand_tiny_alerts_are_all_stored_in_one_incident() -> None:
    alerts = [{"labels": {"alertname": "Tiny", "i": str(i)}} for i in range(10_000)]
    response = post({"status": "firing", "alerts": alerts})
    assert_partial_accept(response, stored=10_000, rejected=0)
    assert Alert.objects.count() == 10_000
    assert Incident.objects.count() == 1


def test_twenty_thousand_distinct_alerts_in_one_body_are_accepted() -> None:
    # Three times what PostgreSQL's shared lock table holds by default
    # (64 locks x 100 connections), were each alert to take its own lock; the
    # 100,000-alert body is covered by the copies test above.
    alerts = [{"labels": {"i": str(i)}} for i in range(20_000)]
    body = json.dumps({"status": "firing", "alerts": alerts}, separators=(",", ":"))
    response = post(body.encode())
    assert response.status_code == 200, response.content[:300]


def test_ten_megabytes_of_labels_under_the_limit_are_stored() -> None:
    labels = {f"label{i}": random_text(100_000, seed=i) for i in range(95)}
    payload = make_payload(make_alert(**labels))
    assert 9 * 1024 * 1024 < len(json.dumps(payload)) < 10 * 1024 * 1024
    assert_partial_accept(post(payload), stored=1, rejected=0)
    assert len(Alert.objects.get().labels) == 95 + 3


def test_labels_over_the_limit_are_413_and_recorded() -> None:
    labels = {f"label{i}": random_text(100_000, seed=i) for i in range(110)}
    response = post(make_payload(make_alert(**labels)))
    assert response.status_code == 413
    assert response.json()["error"] == "payload too large"
    delivery = WebhookDelivery.objects.get()
    assert delivery.http_status == 413 and delivery.body_truncated
    assert not Alert.objects.exists()


@pytest.mark.parametrize(
    "raw",
    [b'{"alerts": [{"labels": {"a": "x\x00y"}}]}', b'{"alerts": [\xff\xfe]}'],
    ids=["nul-byte-outside-escape", "invalid-utf8-outside-string"],
)
def test_raw_bytes_that_break_the_json_are_400(raw: bytes) -> None:
    response = post(raw)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid payload"
    assert bytes(WebhookDelivery.objects.get().body) == raw


def test_invalid_utf8_inside_one_alert_rejects_only_that_alert() -> None:
    body = json.dumps(make_payload(make_alert("Bad", team="T"), make_alert("Good")))
    body = body.encode().replace(b'"T"', b'"\xff\xfe"')
    answer = assert_partial_accept(post(body), stored=1, rejected=1)
    assert answer["rejected"][0]["index"] == 0
    assert "UTF-8" in answer["rejected"][0]["reason"]


@pytest.mark.parametrize(
    "alert",
    [
        make_alert("Nul", team="a\u0000b"),
        make_alert("Nul", **{"te\u0000am": "x"}),
        make_alert("Nu\u0000l"),
        make_alert("Nul", summary="s\u0000s"),
        make_alert("Nul", fingerprint="ab\u0000cd"),
        {**make_alert("Nul"), "generatorURL": "http://x/\u0000"},
    ],
    ids=["label-value", "label-name", "alertname", "annotation", "fingerprint", "url"],
)
def test_nul_escape_in_an_alert_never_answers_503(alert: dict) -> None:
    response = post(make_payload(alert, make_alert("Good")))
    assert response.status_code == 200, response.content[:300]
    answer = response.json()
    assert answer["stored"] + len(answer["rejected"]) == 2
    assert Alert.objects.filter(alarm_title="Good").exists()


@pytest.mark.parametrize("field", ["groupKey", "receiver"])
def test_nul_escape_in_the_envelope_never_answers_503(field: str) -> None:
    response = post(make_payload(make_alert(), **{field: "x\u0000y"}))
    assert response.status_code == 200, response.content[:300]


@pytest.mark.parametrize(
    "alert",
    [
        make_alert("Lone", summary="s\ud800s"),
        make_alert("Lone", team="\udc00"),
        make_alert("Lone", team="\ud800\ud800"),
    ],
    ids=["high-in-annotation", "low-in-label", "two-highs"],
)
def test_lone_surrogate_escape_in_an_alert_costs_no_other_alert(alert: dict) -> None:
    # JSON's grammar allows "\ud800", which no UTF-8 text holds; json.dumps
    # writes such a string that way. Like NUL, it becomes U+FFFD.
    body = json.dumps(make_payload(alert, make_alert("Good", namespace="other")))
    response = post(body.encode())
    assert_partial_accept(response, stored=2, rejected=0)
    lone = Alert.objects.get(alarm_title="Lone")
    assert "\ufffd" in json.dumps(lone.labels | lone.annotations, ensure_ascii=False)
    assert bytes(WebhookDelivery.objects.get().body) == body.encode()


def test_an_escaped_backslash_before_u_stays_text() -> None:
    # "\\ud800" is a backslash and "ud800", not an escape.
    response = post(make_payload(make_alert("Text", summary="\\ud800")))
    assert_partial_accept(response, stored=1, rejected=0)
    assert Alert.objects.get().annotations["summary"] == "\\ud800"


@pytest.mark.parametrize(
    ("field", "column"), [("groupKey", "group_key"), ("receiver", "receiver")]
)
def test_lone_surrogate_escape_in_the_envelope_is_kept_as_u_fffd(
    field: str, column: str
) -> None:
    response = post(make_payload(make_alert(), **{field: "x\ud800y"}))
    assert_partial_accept(response, stored=1, rejected=0)
    assert getattr(WebhookDelivery.objects.get(), column) == "x\ufffdy"


def test_numbers_where_strings_belong_reject_only_those_alerts() -> None:
    alerts = [
        {**make_alert("A"), "status": 1},
        {**make_alert("B"), "fingerprint": 123},
        {**make_alert("C"), "startsAt": 1_700_000_000},
        {**make_alert("D"), "generatorURL": 5},
        {**make_alert("E"), "labels": [1, 2]},
        {**make_alert("F"), "annotations": ["x"]},
        5,
        make_alert("Good"),
    ]
    payload = {"status": "firing", "alerts": alerts}
    answer = assert_partial_accept(post(payload), stored=1, rejected=7)
    assert [r["index"] for r in answer["rejected"]] == list(range(7))
    assert "status" in answer["rejected"][0]["reason"]
    assert "fingerprint" in answer["rejected"][1]["reason"]
    assert "startsAt" in answer["rejected"][2]["reason"]


def test_label_values_that_are_not_strings_are_stored_as_text() -> None:
    alert = {
        **make_alert(),
        "labels": {
            "alertname": 5,
            "namespace": "shop",
            "severity": None,
            "replicas": 1.5,
            "paused": True,
            "owner": {"team": "a"},
        },
    }
    assert_partial_accept(post(make_payload(alert)), stored=1, rejected=0)
    labels = Alert.objects.get().labels
    assert labels["alertname"] == "5" and labels["replicas"] == "1.5"
    assert labels["paused"] == "true" and labels["owner"] == '{"team":"a"}'
    assert labels["severity"] == ""


def test_unknown_status_is_rejected_with_a_reason() -> None:
    payload = make_payload(make_alert("P", status="pending"), make_alert("Good"))
    answer = assert_partial_accept(post(payload), stored=1, rejected=1)
    assert "status" in answer["rejected"][0]["reason"]


@pytest.mark.parametrize(
    "starts_at", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:01Z", "2999-01-01T00:00Z"]
)
def test_timestamps_far_in_the_future_or_past_are_stored(starts_at: str) -> None:
    payload = make_payload({**make_alert(), "startsAt": starts_at})
    assert_partial_accept(post(payload), stored=1, rejected=0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("startsAt", "0001-01-01T00:30:00+01:00"),
        ("endsAt", "9999-12-31T23:00:00-05:00"),
    ],
)
def test_timestamps_out_of_range_in_utc_reject_the_alert(
    field: str, value: str
) -> None:
    payload = make_payload({**make_alert("Bad"), field: value}, make_alert("Good"))
    response = post(payload)
    assert response.status_code != 500, NO_500
    assert_partial_accept(response, stored=1, rejected=1)


def test_a_ten_thousand_character_fingerprint_is_cut_to_255() -> None:
    payload = make_payload(make_alert(fingerprint=random_text(10_000)))
    assert_partial_accept(post(payload), stored=1, rejected=0)
    assert len(Alert.objects.get().fingerprint) == 255


@pytest.mark.parametrize(
    ("group_key", "stored_as"),
    [({"a": [1, 2]}, '{"a": [1, 2]}'), (42, "42"), (None, "")],
    ids=["object", "number", "null"],
)
def test_group_key_of_any_json_type_is_kept_as_text(group_key, stored_as) -> None:  # noqa: ANN001
    response = post(make_payload(make_alert(), groupKey=group_key))
    assert_partial_accept(response, stored=1, rejected=0)
    assert WebhookDelivery.objects.get().group_key == stored_as


def test_huge_truncated_alerts_is_clamped_not_a_503() -> None:
    response = post(make_payload(make_alert(), truncatedAlerts=2**40))
    assert response.status_code == 200, response.content[:300]


@pytest.mark.parametrize(
    ("sent", "recorded"), [("²", 0), ("3²", 0), ("①", 0), (" 7 ", 7), ("1_000", 0)]
)
def test_truncated_alerts_text_that_is_not_a_count_is_zero_not_a_500(
    sent: str, recorded: int
) -> None:
    # "²" is a digit to str.isdigit but not to int().
    response = post(make_payload(make_alert(), truncatedAlerts=sent))
    assert_partial_accept(response, stored=1, rejected=0)
    assert WebhookDelivery.objects.get().truncated_alerts == recorded


@pytest.mark.parametrize("label", ["namespace", "cluster"])
def test_huge_grouping_label_is_stored_not_a_503(label: str) -> None:
    payload = make_payload(make_alert(**{label: random_text(20_000)}))
    response = post(payload)
    assert response.status_code == 200, response.content[:300]


@pytest.mark.parametrize(
    ("forwarded", "recorded"),
    [("fe80::1%eth0", "fe80::1"), ("2001:db8::7%25", "2001:db8::7")],
)
def test_a_forwarded_ipv6_address_with_a_zone_is_kept_without_it_not_a_503(
    settings,  # noqa: ANN001
    forwarded: str,
    recorded: str,
) -> None:
    # Python reads the zone (`%eth0`); PostgreSQL's inet has none and refused
    # the row, so every retry of the delivery answered 503 and stored nothing.
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    response = post(make_payload(make_alert()), X_Forwarded_For=forwarded)
    assert_partial_accept(response, stored=1, rejected=0)
    assert WebhookDelivery.objects.get().source_address == recorded


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"],
)
def test_content_type_missing_or_wrong_still_reads_the_body(content_type) -> None:  # noqa: ANN001
    payload = make_payload(make_alert())
    response = post(payload, content_type=content_type)
    assert_partial_accept(response, stored=1, rejected=0)


def test_gzip_body_is_400_and_kept() -> None:
    raw = gzip.compress(json.dumps(make_payload(make_alert())).encode())
    response = post(raw, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 400
    assert "malformed JSON" in response.json()["detail"]
    assert bytes(WebhookDelivery.objects.get().body) == raw


@pytest.mark.parametrize("body", [b"", b"   ", b"null", b"{}", b'{"alerts": null}'])
def test_empty_or_alertless_body_is_400(body: bytes) -> None:
    response = post(body)
    assert response.status_code == 400
    answer = response.json()
    assert answer["error"] == "invalid payload" and answer["detail"]


def test_a_big_integer_label_rejects_only_that_alert() -> None:
    good = json.dumps(make_alert("Good")).encode()
    body = b'{"alerts": [{"labels": {"a": 1' + b"0" * 5000 + b"}}, " + good + b"]}"
    assert_partial_accept(post(body), stored=1, rejected=1)


def test_a_body_with_its_content_length_is_read_through_wsgi() -> None:
    body = json.dumps(make_payload(make_alert())).encode()
    answer = wsgi.call("POST", URL, body, CONTENT_LENGTH=str(len(body)))
    assert answer.status == 200, answer.body[:300]


def test_a_chunked_body_without_content_length_is_read() -> None:
    body = json.dumps(make_payload(make_alert())).encode()
    answer = wsgi.call("POST", URL, body, **wsgi.chunked())
    assert answer.status == 200, answer.body[:300]
    assert Alert.objects.count() == 1
