"""Paging, filters and query counts of the alert list."""

from datetime import UTC, datetime, timedelta

import pytest

from alerts.models import Alert
from alerts.tests.factories import AlertFactory
from incidents.tests.factories import IncidentFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def ids(response):  # noqa: ANN001, ANN201
    assert response.status_code == 200, response.content
    return [item["alert_id"] for item in response.json()]


def bulk_alerts(count: int, **fields) -> list[Alert]:  # noqa: ANN003
    incident = IncidentFactory()
    return Alert.objects.bulk_create(
        [
            Alert(
                incident=incident,
                fingerprint=f"bulk-{n}",
                alarm_title="HighLatency",
                status="resolved",
                fired_at=T0 - timedelta(seconds=n),
                last_seen_at=T0,
                labels={"alertname": "HighLatency", "n": str(n)},
                **fields,
            )
            for n in range(count)
        ]
    )


@pytest.mark.parametrize(("method", "url"), [("post", ""), ("delete", "/")])
def test_list_answers_errors_without_the_detail_envelope(auth_client, method, url):
    response = getattr(auth_client, method)(f"/api/v1/alerts{url}")

    assert response.status_code == 405
    assert response.json() == {
        "error": "method not allowed",
        "detail": f'Method "{method.upper()}" not allowed.',
    }


def test_detail_answers_a_wrong_method_in_the_envelope(auth_client):
    alert = AlertFactory()

    response = auth_client.delete(f"/api/v1/alerts/{alert.pk}")

    assert response.status_code == 405
    assert response.json() == {
        "status": "error",
        "message": 'Method "DELETE" not allowed.',
        "error": "method not allowed",
    }


def test_list_pages_with_limit_offset_total_and_next_link(auth_client):
    alerts = bulk_alerts(5)

    first = auth_client.get("/api/v1/alerts?limit=2&offset=1")
    last = auth_client.get("/api/v1/alerts?limit=2&offset=3")

    assert ids(first) == [a.pk for a in alerts[1:3]]
    assert first["X-Total-Count"] == "5"
    assert first["Link"] == (
        '<http://testserver/api/v1/alerts?limit=2&offset=3>; rel="next"'
    )
    assert ids(last) == [a.pk for a in alerts[3:]]
    assert "Link" not in last


def test_list_breaks_fired_at_ties_by_id(auth_client):
    alerts = [AlertFactory(fired_at=T0) for _ in range(4)]

    assert ids(auth_client.get("/api/v1/alerts")) == sorted(
        (a.pk for a in alerts), reverse=True
    )


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
        ("status=pending", "status"),
        ("severity=none", "severity"),
        ("since=2026-03-01", "since"),
        ("until=soon", "until"),
        ("namespace=" + "n" * 254, "namespace"),
    ],
)
def test_list_rejects_bad_parameters_naming_them(auth_client, query, param):
    response = auth_client.get(f"/api/v1/alerts?{query}")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid parameter"
    assert response.json()["detail"].startswith(f"{param}: ")


@pytest.fixture
def spread(db):  # noqa: ANN001, ANN201
    a = AlertFactory(
        alarm_title="DiskFull", severity="critical", namespace="payments", fired_at=T0
    )
    b = AlertFactory(
        alarm_title="PodCrash",
        resolved=True,
        namespace="payments",
        fired_at=T0 - timedelta(hours=1),
    )
    c = AlertFactory(
        alarm_title="DiskSlow",
        severity="info",
        namespace="web",
        fired_at=T0 - timedelta(hours=2),
    )
    d = AlertFactory(
        alarm_title="Latency",
        severity="critical",
        resolved=True,
        namespace=None,
        fired_at=T0 - timedelta(hours=3),
    )
    return a, b, c, d


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=firing", "ac"),
        ("status=resolved", "bd"),
        ("severity=critical", "ad"),
        ("severity=warning,info", "bc"),
        ("namespace=payments", "ab"),
        ("namespace=web", "c"),
        ("namespace=web&namespace=payments", "c"),  # the first counts
        ("q=disk", "ac"),
        ("since=2026-03-01T10:30:00Z", "ab"),
        ("until=2026-03-01T10:30:00Z", "cd"),
        ("since=2026-03-01T08:00:00Z&until=2026-03-01T11:00:00Z", "bcd"),
        ("severity=critical&status=resolved", "d"),
        ("namespace=payments&severity=critical&q=Disk", "a"),
        ("namespace=payments&status=resolved&until=2026-03-01T11:00:00Z", "b"),
    ],
)
def test_list_filters(auth_client, spread, query, expected):
    by_letter = dict(zip("abcd", spread, strict=True))

    response = auth_client.get(f"/api/v1/alerts?{query}")

    assert ids(response) == [by_letter[x].pk for x in expected]
    assert response["X-Total-Count"] == str(len(expected))


def test_list_filters_by_a_severity_the_ingest_gate_lets_in(auth_client, settings):
    settings.INGEST_SEVERITIES = ["critical", "warning", "info", "page"]
    paged = AlertFactory(severity="page")
    AlertFactory(severity="critical")

    response = auth_client.get("/api/v1/alerts?severity=page")

    assert response.status_code == 200, response.content
    assert ids(response) == [paged.pk]
    settings.INGEST_SEVERITIES = ["critical"]
    assert auth_client.get("/api/v1/alerts?severity=page").status_code == 400


def test_list_q_matches_an_exact_alert_id_or_fingerprint(auth_client, spread):
    by_id = auth_client.get(f"/api/v1/alerts?q={spread[1].pk}")
    by_fingerprint = auth_client.get(f"/api/v1/alerts?q={spread[2].fingerprint}")

    assert ids(by_id) == [spread[1].pk]
    assert ids(by_fingerprint) == [spread[2].pk]


def test_list_query_count_is_the_same_for_1_and_5000_rows(
    auth_client, django_assert_num_queries
):
    bulk_alerts(1, severity="critical")
    with django_assert_num_queries(3):  # user, page, count
        assert len(ids(auth_client.get("/api/v1/alerts?severity=critical"))) == 1

    Alert.objects.all().delete()
    bulk_alerts(5000, severity="critical")
    with django_assert_num_queries(3):
        body = auth_client.get("/api/v1/alerts?limit=5000&severity=critical").json()
    assert len(body) == 5000
