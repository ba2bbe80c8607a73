"""Paging, filters and query counts of the incident lists."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db.models.signals import post_save

from alerts.models import Alert
from alerts.tests.factories import AlertFactory
from incidents.models import Incident
from incidents.tests.factories import IncidentFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def ids(response):  # noqa: ANN001, ANN201
    assert response.status_code == 200, response.content
    return [item["incident_id"] for item in response.json()]


def exposed(response) -> set[str]:  # noqa: ANN001
    header = response.get("Access-Control-Expose-Headers", "")
    return {name.strip().lower() for name in header.split(",") if name.strip()}


def bulk_incidents(count: int, *, alerts_each: int = 0) -> list[Incident]:
    incidents = Incident.objects.bulk_create(
        [
            Incident(title=f"bulk {n}", fired_at=T0 - timedelta(seconds=n))
            for n in range(count)
        ]
    )
    Alert.objects.bulk_create(
        [
            Alert(
                incident=incident,
                fingerprint=f"{incident.pk}-{k}",
                status="firing" if k == 0 else "resolved",
                fired_at=incident.fired_at + timedelta(seconds=k),
                last_seen_at=incident.fired_at,
            )
            for incident in incidents
            for k in range(alerts_each)
        ]
    )
    return incidents


# Paging ---------------------------------------------------------------------


def test_list_pages_with_limit_offset_total_and_next_link(auth_client):
    incidents = bulk_incidents(5)

    first = auth_client.get("/api/v1/incidents?limit=2&severity=warning")
    last = auth_client.get("/api/v1/incidents?limit=2&offset=4")

    assert ids(first) == [i.pk for i in incidents[:2]]
    assert first["X-Total-Count"] == "5"
    assert first["Link"] == (
        "<http://testserver/api/v1/incidents?limit=2&offset=2&severity=warning>;"
        ' rel="next"'
    )
    assert ids(last) == [incidents[4].pk]
    assert last["X-Total-Count"] == "5"
    assert "Link" not in last


def test_a_frontend_on_another_origin_can_read_the_paging_headers(
    auth_client, settings
):
    settings.CORS_ALLOWED_ORIGINS = ["https://rca.example.com"]
    bulk_incidents(3)

    response = auth_client.get(
        "/api/v1/incidents?limit=2", HTTP_ORIGIN="https://rca.example.com"
    )

    assert response["Access-Control-Allow-Origin"] == "https://rca.example.com"
    assert {"x-total-count", "link"} <= exposed(response)
    assert response["X-Total-Count"] == "3"
    assert "Link" in response


def test_other_origins_are_shown_no_paging_headers(auth_client, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://rca.example.com"]
    bulk_incidents(3)

    response = auth_client.get(
        "/api/v1/incidents?limit=2", HTTP_ORIGIN="https://evil.example.com"
    )

    assert "Access-Control-Allow-Origin" not in response
    assert exposed(response) == set()


def test_next_link_keeps_every_value_of_a_repeated_filter(auth_client):
    bulk_incidents(3)

    response = auth_client.get(
        "/api/v1/incidents?limit=2&severity=warning&severity=critical"
    )

    assert len(ids(response)) == 2
    assert response["Link"] == (
        "<http://testserver/api/v1/incidents?limit=2&offset=2"
        '&severity=warning&severity=critical>; rel="next"'
    )


def test_list_follows_next_links_to_every_row_once(auth_client):
    incidents = bulk_incidents(7)
    url, seen = "/api/v1/incidents?limit=3", []

    while url:
        response = auth_client.get(url)
        seen += ids(response)
        link = response.get("Link")
        url = link[1 : link.index(">")] if link else None

    assert seen == [i.pk for i in incidents]


@pytest.mark.parametrize(
    ("stored", "query", "rows"),
    [(501, "", 500), (5003, "?limit=9999", 5000)],
    ids=["default-500", "at-most-5000"],
)
def test_list_gives_one_page_and_links_the_next(auth_client, stored, query, rows):
    bulk_incidents(stored)

    response = auth_client.get(f"/api/v1/incidents{query}")

    assert len(ids(response)) == rows
    assert response["X-Total-Count"] == str(stored)
    assert f"offset={rows}" in response["Link"]


def test_list_takes_a_limit_far_above_5000(auth_client):
    bulk_incidents(3)

    response = auth_client.get("/api/v1/incidents?limit=99999")

    assert len(ids(response)) == 3


def test_list_offset_past_the_end_is_empty(auth_client):
    bulk_incidents(2)

    response = auth_client.get("/api/v1/incidents?offset=10")

    assert ids(response) == []
    assert response["X-Total-Count"] == "2"


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("limit=abc", "limit"),
        ("limit=-1", "limit"),
        ("limit=1.5", "limit"),
        ("limit=1_0", "limit"),
        ("limit=%2B3", "limit"),
        ("limit=%EF%BC%95", "limit"),  # a full-width 5
        ("offset=%203", "offset"),
        ("offset=" + "9" * 5000, "offset"),
        ("offset=x", "offset"),
        ("offset=-3", "offset"),
        ("status=open", "status"),
        ("status=firing,resolved", "status"),
        ("severity=high", "severity"),
        ("severity=critical,bogus", "severity"),
        ("since=yesterday", "since"),
        ("since=2026-01-02", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        # Not RFC 3339, though Python's fromisoformat reads them.
        ("since=2026-03-01T12:00:00%00", "since"),
        ("since=2026-03-01T12:00:00X%2B00:00", "since"),
        ("since=2026-03-01T12:00:00%2B01", "since"),
        ("since=2026-03-01T12:00:00%2B05:99", "since"),
        ("until=2026-03-01T12:00:00,5Z", "until"),
        ("until=2026-W09-7T12:00:00Z", "until"),
        ("q=" + "x" * 201, "q"),
    ],
)
def test_list_rejects_bad_parameters_naming_them(auth_client, query, param):
    for url in ("/api/v1/incidents", "/api/v1/incidents/hidden"):
        response = auth_client.get(f"{url}?{query}")

        assert response.status_code == 400
        body = response.json()
        assert body["error"] == "invalid parameter"
        assert body["detail"].startswith(f"{param}: ")


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("post", "/api/v1/incidents"),
        ("delete", "/api/v1/incidents/"),
        ("post", "/api/v1/incidents/hidden"),
        ("get", "/api/v1/incidents/mock"),
    ],
)
def test_list_routes_answer_errors_without_the_detail_envelope(
    auth_client, method, url
):
    response = getattr(auth_client, method)(url)

    assert response.status_code == 405
    assert response.json() == {
        "error": "method not allowed",
        "detail": f'Method "{method.upper()}" not allowed.',
    }


def test_detail_routes_answer_a_wrong_method_in_the_envelope(auth_client):
    incident = IncidentFactory()

    response = auth_client.delete(f"/api/v1/incidents/{incident.pk}")

    assert response.status_code == 405
    assert response.json() == {
        "status": "error",
        "message": 'Method "DELETE" not allowed.',
        "error": "method not allowed",
    }


# Filters --------------------------------------------------------------------


@pytest.fixture
def spread(db):  # noqa: ANN001, ANN201
    """Four incidents an hour apart, of every status and severity."""
    a = IncidentFactory(title="Disk full", severity="critical", fired_at=T0)
    b = IncidentFactory(
        title="Pod crash", resolved=True, fired_at=T0 - timedelta(hours=1)
    )
    c = IncidentFactory(
        title="disk slow", severity="info", fired_at=T0 - timedelta(hours=2)
    )
    d = IncidentFactory(
        title="Latency",
        severity="critical",
        resolved=True,
        fired_at=T0 - timedelta(hours=3),
    )
    AlertFactory(incident=a, namespace="payments")
    AlertFactory(incident=b, namespace="payments")
    AlertFactory(incident=c, namespace="web")
    AlertFactory(incident=d, namespace="payments", is_enabled=False)
    return a, b, c, d


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=firing", "ac"),
        ("status=RESOLVED", "bd"),
        ("severity=critical", "ad"),
        ("severity=critical,info", "acd"),
        ("severity=critical&severity=info", "acd"),
        # Of another parameter given twice, the first counts.
        ("status=resolved&status=firing", "bd"),
        ("q=disk&q=pod", "ac"),
        ("since=2026-03-01T10:00:00Z&since=2026-03-01T08:00:00Z", "abc"),
        ("namespace=payments", "ab"),
        ("namespace=nowhere", ""),
        ("q=disk", "ac"),
        ("since=2026-03-01T10:00:00Z", "abc"),
        ("until=2026-03-01T10:00:00Z", "cd"),
        ("since=2026-03-01T09:30:00Z&until=2026-03-01T11:30:00Z", "bc"),
        ("since=2026-03-01T13:00:00%2B02:00", "ab"),
        ("status=firing&severity=critical", "a"),
        ("status=resolved&namespace=payments", "b"),
        ("q=disk&since=2026-03-01T11:00:00Z&severity=critical", "a"),
        ("severity=", "abcd"),
    ],
)
def test_list_filters(auth_client, spread, query, expected):
    by_letter = dict(zip("abcd", spread, strict=True))

    response = auth_client.get(f"/api/v1/incidents?{query}")

    assert ids(response) == [by_letter[x].pk for x in expected]
    assert response["X-Total-Count"] == str(len(expected))


def test_until_at_a_whole_second_takes_in_that_second(auth_client, db):  # noqa: ANN001
    """The API shows fired_at to the second; the row keeps its microseconds."""
    during = IncidentFactory(fired_at=T0 + timedelta(microseconds=999_999))
    IncidentFactory(fired_at=T0 + timedelta(seconds=1))

    whole = auth_client.get("/api/v1/incidents?until=2026-03-01T12:00:00Z")
    exact = auth_client.get("/api/v1/incidents?until=2026-03-01T12:00:00.5Z")

    assert whole.json()[0]["fired_at"] == "2026-03-01T12:00:00Z"
    assert ids(whole) == [during.pk]
    assert ids(exact) == []


@pytest.mark.parametrize("path", ["/api/v1/incidents", "/api/v1/alerts"])
def test_until_at_the_last_second_of_the_calendar_takes_in_everything(
    auth_client,
    db,
    path,  # noqa: ANN001
):
    incident = IncidentFactory()

    response = auth_client.get(f"{path}?until=9999-12-31T23:59:59Z")

    assert response.status_code == 200
    if path == "/api/v1/incidents":
        assert ids(response) == [incident.pk]


def test_list_q_matches_an_exact_incident_id(auth_client, spread):
    response = auth_client.get(f"/api/v1/incidents?q={spread[2].pk}")

    assert ids(response) == [spread[2].pk]


def test_hidden_list_takes_the_same_filters(auth_client):
    IncidentFactory(hidden=True, severity="info")
    critical = IncidentFactory(hidden=True, severity="critical")

    response = auth_client.get("/api/v1/incidents/hidden?severity=critical")

    assert ids(response) == [critical.pk]


# Query counts ---------------------------------------------------------------


def test_list_query_count_is_the_same_for_1_and_5000_rows(
    auth_client, django_assert_num_queries
):
    url, hidden = "/api/v1/incidents", False
    one = bulk_incidents(1, alerts_each=2)
    Incident.objects.filter(pk=one[0].pk).update(is_enabled=not hidden)
    with django_assert_num_queries(3):  # user, page, count
        assert len(ids(auth_client.get(f"{url}?limit=5000"))) == 1

    Incident.objects.all().delete()
    bulk_incidents(5000, alerts_each=2)
    Incident.objects.update(is_enabled=not hidden)
    with django_assert_num_queries(3):
        body = auth_client.get(f"{url}?limit=5000&namespace=").json()
    assert len(body) == 5000
    assert {item["alert_count"] for item in body} == {2}


def test_hidden_list_query_count_is_the_same_for_1_and_300_rows(
    auth_client, django_assert_num_queries
):
    bulk_incidents(1, alerts_each=1)
    Incident.objects.update(is_enabled=False)
    with django_assert_num_queries(3):
        auth_client.get("/api/v1/incidents/hidden?namespace=default")

    bulk_incidents(300, alerts_each=1)
    Incident.objects.update(is_enabled=False)
    with django_assert_num_queries(3):
        auth_client.get("/api/v1/incidents/hidden?namespace=default")


def test_list_sends_no_signal_or_write(auth_client):
    saves = []
    post_save.connect(lambda **kw: saves.append(kw), weak=False, dispatch_uid="t")
    try:
        bulk_incidents(3)
        auth_client.get("/api/v1/incidents")
    finally:
        post_save.disconnect(dispatch_uid="t")
    assert saves == []
