"""The incident API: bodies, envelopes, status codes and services behind them."""

import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.utils import timezone

from alerts.models import Alert
from alerts.tests.factories import AlertAnalysisFactory, AlertFactory
from alerts.tests.webhook_helpers import make_alert, make_payload
from incidents import events, selectors
from incidents.models import Incident
from incidents.serializers import (
    AlertItemSerializer,
    IncidentListItemSerializer,
    plain_rows,
)
from incidents.tests.factories import IncidentFactory

pytestmark = pytest.mark.django_db

LIST_KEYS = {
    "incident_id",
    "title",
    "severity",
    "status",
    "fired_at",
    "resolved_at",
    "alert_count",
}
DETAIL_KEYS = {
    "incident_id",
    "title",
    "severity",
    "status",
    "fired_at",
    "resolved_at",
    "analysis_summary",
    "analysis_detail",
    "created_by",
    "resolved_by",
    "is_analyzing",
    "similar_incidents",
}
ALERT_ITEM_KEYS = {
    "alert_id",
    "incident_id",
    "alarm_title",
    "namespace",
    "severity",
    "status",
    "fired_at",
    "resolved_at",
    "labels",
}
ENVELOPE_ERROR_KEYS = {"status", "message", "error"}


def similar_two(incident, *, limit):  # noqa: ANN001, ANN201
    return [
        {"incident_id": "INC-00000001", "title": "Disk full", "score": 0.91},
        {"incident_id": "INC-00000002", "title": "Disk slow", "score": 0.5},
    ]


def similar_broken(incident, *, limit):  # noqa: ANN001, ANN201
    raise DatabaseError("relation does not exist")


def similar_slow(incident, *, limit):  # noqa: ANN001, ANN201
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(5)")
    return similar_two(incident, limit=limit)


def put(client, url, body):  # noqa: ANN001, ANN201
    return client.put(url, json.dumps(body), content_type="application/json")


# Authentication -------------------------------------------------------------

ROUTES = [
    ("get", "/api/v1/incidents"),
    ("get", "/api/v1/incidents/hidden"),
    ("post", "/api/v1/incidents/mock"),
    ("get", "/api/v1/incidents/INC-1"),
    ("put", "/api/v1/incidents/INC-1"),
    ("patch", "/api/v1/incidents/INC-1"),
    ("patch", "/api/v1/incidents/INC-1/unhide"),
    ("post", "/api/v1/incidents/INC-1/resolve"),
    ("get", "/api/v1/incidents/INC-1/alerts"),
    ("post", "/api/v1/incidents/INC-1/analyze"),
]


@pytest.mark.parametrize(("method", "url"), ROUTES)
def test_every_incident_route_rejects_missing_token(api_client, method, url):
    response = getattr(api_client, method)(url)

    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}


@pytest.mark.parametrize(("method", "url"), ROUTES)
def test_every_incident_route_rejects_bad_token(api_client, method, url):
    api_client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")

    response = getattr(api_client, method)(url)

    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}


# List -----------------------------------------------------------------------


def test_list_returns_visible_incidents_newest_first(auth_client):
    now = timezone.now()
    old = IncidentFactory(fired_at=now - timedelta(hours=2))
    new = IncidentFactory(fired_at=now - timedelta(hours=1))
    IncidentFactory(hidden=True, fired_at=now)
    AlertFactory.create_batch(2, incident=new)
    AlertFactory(incident=new, is_enabled=False)

    response = auth_client.get("/api/v1/incidents")

    assert response.status_code == 200
    body = response.json()
    assert [item["incident_id"] for item in body] == [new.pk, old.pk]
    assert set(body[0]) == LIST_KEYS
    assert body[0]["alert_count"] == 2
    assert body[1]["alert_count"] == 0
    assert response["X-Total-Count"] == "2"
    assert "Link" not in response


def test_list_breaks_fired_at_ties_by_id(auth_client):
    at = timezone.now()
    ids = [IncidentFactory(fired_at=at).pk for _ in range(4)]

    body = auth_client.get("/api/v1/incidents").json()

    assert [item["incident_id"] for item in body] == sorted(ids, reverse=True)


def test_list_accepts_trailing_slash(auth_client):
    IncidentFactory()

    assert len(auth_client.get("/api/v1/incidents/").json()) == 1
    assert len(auth_client.get("/api/v1/incidents/hidden/").json()) == 0


def test_list_formats_times_as_rfc3339_with_z(auth_client):
    IncidentFactory(
        resolved=True,
        fired_at=datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC),
    )

    item = auth_client.get("/api/v1/incidents").json()[0]

    assert item["fired_at"] == "2026-01-02T03:04:05Z"
    assert item["resolved_at"] == "2026-01-02T03:07:05Z"


def test_times_before_year_1000_keep_four_digit_years(auth_client):
    # A sender's clock far off: the year is still RFC 3339's four digits.
    IncidentFactory(fired_at=datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC))

    item = auth_client.get("/api/v1/incidents").json()[0]

    assert item["fired_at"] == "0001-01-01T00:00:01Z"


def test_hidden_list_returns_only_hidden_incidents(auth_client):
    IncidentFactory()
    hidden = IncidentFactory(hidden=True)

    body = auth_client.get("/api/v1/incidents/hidden").json()

    assert [item["incident_id"] for item in body] == [hidden.pk]
    assert set(body[0]) == LIST_KEYS


# Detail ---------------------------------------------------------------------


def test_detail_has_every_key_and_its_alerts(auth_client, settings):
    settings.SIMILAR_INCIDENTS_FINDER = f"{__name__}.similar_two"
    incident = IncidentFactory(analysis_summary="OOM", created_by="system")
    older = AlertFactory(
        incident=incident, fired_at=timezone.now() - timedelta(hours=1)
    )
    newer = AlertFactory(incident=incident, namespace=None)

    response = auth_client.get(f"/api/v1/incidents/{incident.pk}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "data"}
    assert body["status"] == "success"
    data = body["data"]
    assert set(data) == DETAIL_KEYS | {"alerts"}
    assert data["analysis_summary"] == "OOM"
    assert data["is_analyzing"] is False
    assert data["similar_incidents"] == similar_two(incident, limit=5)
    assert [a["alert_id"] for a in data["alerts"]] == [newer.pk, older.pk]
    assert set(data["alerts"][0]) == ALERT_ITEM_KEYS
    assert data["alerts"][0]["namespace"] is None
    assert data["alerts"][1]["namespace"] == "default"


def test_detail_leaves_out_alerts_when_there_are_none(auth_client):
    incident = IncidentFactory()

    data = auth_client.get(f"/api/v1/incidents/{incident.pk}/").json()["data"]

    assert set(data) == DETAIL_KEYS
    assert data["similar_incidents"] == []


def test_detail_shows_hidden_incidents(auth_client):
    incident = IncidentFactory(hidden=True)

    response = auth_client.get(f"/api/v1/incidents/{incident.pk}")

    assert response.status_code == 200


def test_detail_rejects_unknown_id_in_envelope(auth_client):
    response = auth_client.get("/api/v1/incidents/INC-ffffffff")

    assert response.status_code == 404
    assert response.json() == {
        "status": "error",
        "message": "incident not found",
        "error": "incident not found",
    }


def test_detail_survives_a_failing_similar_search(auth_client, settings):
    settings.SIMILAR_INCIDENTS_FINDER = f"{__name__}.similar_broken"
    incident = IncidentFactory()

    response = auth_client.get(f"/api/v1/incidents/{incident.pk}")

    assert response.status_code == 200
    assert response.json()["data"]["similar_incidents"] == []
    assert Incident.objects.filter(pk=incident.pk).exists()  # transaction usable


def test_detail_gives_up_on_a_slow_similar_search(auth_client, settings):
    settings.SIMILAR_INCIDENTS_FINDER = f"{__name__}.similar_slow"
    incident = IncidentFactory()

    started = time.monotonic()
    response = auth_client.get(f"/api/v1/incidents/{incident.pk}")

    assert time.monotonic() - started < 3
    assert response.json()["data"]["similar_incidents"] == []
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"


def test_detail_restores_the_statement_timeout_after_the_search(auth_client, settings):
    settings.SIMILAR_INCIDENTS_FINDER = f"{__name__}.similar_two"
    incident = IncidentFactory()

    auth_client.get(f"/api/v1/incidents/{incident.pk}")

    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"


def test_plain_rows_shape_rows_like_the_serializers():
    alert = AlertFactory(resolved=True, namespace=None)
    rows = list(Alert.objects.filter(pk=alert.pk).values(*selectors.ALERT_ITEM_FIELDS))
    incidents = selectors.incident_list_page(Incident.objects.all())
    annotated = Incident.objects.annotate(
        alert_count=selectors.alert_count_subquery()
    ).get()

    assert plain_rows(AlertItemSerializer, rows) == [
        dict(AlertItemSerializer(alert).data)
    ]
    assert plain_rows(IncidentListItemSerializer, incidents) == [
        dict(IncidentListItemSerializer(annotated).data)
    ]
    assert annotated.alert_count == 1


def test_detail_survives_a_missing_similar_finder(auth_client, settings):
    settings.SIMILAR_INCIDENTS_FINDER = "embeddings.nowhere.similar_incidents"
    incident = IncidentFactory()

    response = auth_client.get(f"/api/v1/incidents/{incident.pk}")

    assert response.json()["data"]["similar_incidents"] == []


def test_detail_is_analyzing_while_the_final_analysis_is_pending(auth_client):
    incident = IncidentFactory(resolved=True, summary_status="pending")

    data = auth_client.get(f"/api/v1/incidents/{incident.pk}").json()["data"]

    assert data["is_analyzing"] is True


@pytest.mark.parametrize(("state", "analyzing"), [("running", True), ("done", False)])
def test_detail_is_analyzing_while_an_alert_analysis_runs(
    auth_client, state, analyzing
):
    analysis = AlertAnalysisFactory(state=state)

    data = auth_client.get(f"/api/v1/incidents/{analysis.incident_id}").json()["data"]

    assert data["is_analyzing"] is analyzing


def test_detail_query_count_does_not_grow_with_alerts(
    auth_client, django_assert_num_queries, settings
):
    settings.SIMILAR_INCIDENTS_FINDER = f"{__name__}.similar_two"
    few = IncidentFactory()
    AlertFactory(incident=few)
    many = IncidentFactory()
    AlertFactory.create_batch(50, incident=many)
    selectors._finder.cache_clear()
    auth_client.get(f"/api/v1/incidents/{few.pk}")  # warm the finder lookup

    # user, incident, alerts, analyzing; savepoint, timeout, restore, release
    with django_assert_num_queries(8):
        auth_client.get(f"/api/v1/incidents/{few.pk}")
    with django_assert_num_queries(8):
        auth_client.get(f"/api/v1/incidents/{many.pk}")


# Update ---------------------------------------------------------------------


def test_update_applies_the_four_fields_and_ignores_other_keys(auth_client):
    incident = IncidentFactory(title="Old", severity="info")
    detail = auth_client.get(f"/api/v1/incidents/{incident.pk}").json()["data"]
    detail.update(
        title="New", severity="critical", analysis_summary="S", analysis_detail="D"
    )
    detail["status"] = "resolved"  # not editable: ignored
    detail["alerts"] = [{"alert_id": "ALR-1"}]

    response = put(auth_client, f"/api/v1/incidents/{incident.pk}", detail)

    assert response.status_code == 200
    assert response.json() == {
        "status": "success",
        "message": "incident updated",
        "incident_id": incident.pk,
    }
    incident.refresh_from_db()
    assert (incident.title, incident.severity, incident.status) == (
        "New",
        "critical",
        "firing",
    )
    assert (incident.analysis_summary, incident.analysis_detail) == ("S", "D")


def test_update_keeps_fields_left_out(auth_client):
    incident = IncidentFactory(title="Keep", severity="critical")

    response = put(auth_client, f"/api/v1/incidents/{incident.pk}/", {"title": "T"})

    assert response.status_code == 200
    incident.refresh_from_db()
    assert (incident.title, incident.severity) == ("T", "critical")


def ingested_detail(auth_client, alert):  # noqa: ANN001, ANN201
    """The incident a webhook of `alert` opens, and its detail as the API shows it."""
    webhook = Client().post(
        "/webhook/alertmanager", make_payload(alert), content_type="application/json"
    )
    assert webhook.status_code == 200
    incident = Incident.objects.get()
    return incident, auth_client.get(f"/api/v1/incidents/{incident.pk}").json()["data"]


def test_update_takes_back_a_blank_title_kuberca_gave_the_incident(auth_client):
    # A summary annotation of only a zero-width space becomes the title; the
    # frontend then sends it back unchanged with every edit.
    incident, detail = ingested_detail(auth_client, make_alert(summary="\u200b"))
    detail["severity"] = "critical"

    response = put(auth_client, f"/api/v1/incidents/{incident.pk}", detail)

    assert response.status_code == 200, response.json()
    incident.refresh_from_db()
    assert (incident.title, incident.severity) == ("\u200b", "critical")


def test_update_takes_a_severity_the_ingest_gate_lets_in(auth_client, settings):
    # Such an incident's own severity comes back with every edit the
    # frontend makes.
    settings.INGEST_SEVERITIES = ["critical", "warning", "info", "page"]
    incident, detail = ingested_detail(auth_client, make_alert(severity="page"))
    assert incident.severity == "page"
    detail["title"] = "Paged"

    response = put(auth_client, f"/api/v1/incidents/{incident.pk}", detail)

    assert response.status_code == 200, response.json()
    incident.refresh_from_db()
    assert (incident.title, incident.severity) == ("Paged", "page")


def test_update_takes_back_a_severity_the_ingest_gate_no_longer_lets_in(
    auth_client, settings
):
    settings.INGEST_SEVERITIES = ["critical", "warning", "info", "page"]
    incident, detail = ingested_detail(auth_client, make_alert(severity="page"))
    settings.INGEST_SEVERITIES = ["critical", "warning", "info"]
    detail["title"] = "Paged"

    response = put(auth_client, f"/api/v1/incidents/{incident.pk}", detail)

    assert response.status_code == 200, response.json()
    incident.refresh_from_db()
    assert (incident.title, incident.severity) == ("Paged", "page")


def test_update_rejects_a_severity_the_ingest_gate_no_longer_lets_in(auth_client):
    incident = IncidentFactory(severity="warning")

    response = put(
        auth_client, f"/api/v1/incidents/{incident.pk}", {"severity": "page"}
    )

    assert response.status_code == 400
    incident.refresh_from_db()
    assert incident.severity == "warning"


@pytest.mark.parametrize(
    "body",
    [
        {"title": 5},
        {"severity": None},
        {"analysis_summary": ["x"]},
        {"analysis_detail": {"a": 1}},
        {"severity": "disaster"},
    ],
)
def test_update_rejects_wrong_types_and_unknown_severity(auth_client, body):
    incident = IncidentFactory(title="Same")

    response = put(auth_client, f"/api/v1/incidents/{incident.pk}", body)

    assert response.status_code == 400
    assert set(response.json()) == ENVELOPE_ERROR_KEYS
    assert response.json()["error"] == "invalid input"
    incident.refresh_from_db()
    assert incident.title == "Same"


@pytest.mark.parametrize("raw", ["[1, 2]", '"title"', "null", "{bad json"])
def test_update_rejects_a_body_that_is_not_an_object(auth_client, raw):
    incident = IncidentFactory()

    response = auth_client.put(
        f"/api/v1/incidents/{incident.pk}", raw, content_type="application/json"
    )

    assert response.status_code == 400
    assert set(response.json()) == ENVELOPE_ERROR_KEYS


def test_update_rejects_unknown_id(auth_client):
    response = put(auth_client, "/api/v1/incidents/INC-ffffffff", {"title": "x"})

    assert response.status_code == 404
    assert response.json()["error"] == "incident not found"


# Hide and unhide ------------------------------------------------------------


def test_hide_and_unhide_move_an_incident_between_lists(auth_client):
    incident = IncidentFactory()

    hidden = auth_client.patch(f"/api/v1/incidents/{incident.pk}")
    in_hidden = auth_client.get("/api/v1/incidents/hidden").json()
    shown = auth_client.patch(f"/api/v1/incidents/{incident.pk}/unhide")

    assert hidden.status_code == 200
    assert hidden.json() == {"status": "success", "message": "incident hidden"}
    assert [i["incident_id"] for i in in_hidden] == [incident.pk]
    assert shown.json() == {"status": "success", "message": "incident unhidden"}
    assert [i["incident_id"] for i in auth_client.get("/api/v1/incidents").json()] == [
        incident.pk
    ]


@pytest.mark.parametrize("suffix", ["", "/unhide"])
def test_hide_and_unhide_reject_unknown_id(auth_client, suffix):
    response = auth_client.patch(f"/api/v1/incidents/INC-ffffffff{suffix}")

    assert response.status_code == 404
    assert set(response.json()) == ENVELOPE_ERROR_KEYS


# Resolve --------------------------------------------------------------------


def test_resolve_defaults_resolved_by_to_the_caller_and_starts_final_analysis(
    auth_client, django_capture_on_commit_callbacks
):
    incident = IncidentFactory()
    started, hooks = [], []

    def on_resolved(sender, incident_id, generation, **kwargs):  # noqa: ANN001
        def hook() -> None:
            started.append((incident_id, generation))

        hooks.append(hook)
        transaction.on_commit(hook)

    events.incident_resolved.connect(on_resolved)
    try:
        with django_capture_on_commit_callbacks() as callbacks:
            response = auth_client.post(f"/api/v1/incidents/{incident.pk}/resolve")
    finally:
        events.incident_resolved.disconnect(on_resolved)
    assert started == []  # nothing before commit
    for hook in hooks:
        assert hook in callbacks
        hook()

    assert response.status_code == 200
    assert response.json() == {
        "status": "success",
        "message": "incident resolved",
        "incident_id": incident.pk,
    }
    incident.refresh_from_db()
    assert (incident.status, incident.resolved_by) == ("resolved", "oncall")
    assert incident.summary_status == "pending"
    assert started == [(incident.pk, 1)]


def test_resolve_takes_resolved_by_from_the_body(auth_client):
    incident = IncidentFactory()

    response = auth_client.post(
        f"/api/v1/incidents/{incident.pk}/resolve",
        {"resolved_by": "alice"},
        format="json",
    )

    assert response.status_code == 200
    incident.refresh_from_db()
    assert incident.resolved_by == "alice"


def test_resolve_rejects_resolved_incident(auth_client):
    incident = IncidentFactory(resolved=True)

    response = auth_client.post(f"/api/v1/incidents/{incident.pk}/resolve")

    assert response.status_code == 409
    assert response.json() == {
        "status": "error",
        "message": "incident is already resolved",
        "error": "already resolved",
    }


@pytest.mark.parametrize(
    ("resolved_by", "message"),
    [
        (3, "resolved_by must be a string"),
        # Kept for resolves by the alerts, which the next alert would reopen.
        (
            " alertmanager ",
            "resolved_by 'alertmanager' stands for a resolve by the incident's "
            "alerts; give the name of the person resolving it",
        ),
    ],
)
def test_resolve_rejects_a_bad_resolved_by(auth_client, resolved_by, message):
    incident = IncidentFactory()

    response = auth_client.post(
        f"/api/v1/incidents/{incident.pk}/resolve",
        {"resolved_by": resolved_by},
        format="json",
    )

    assert response.status_code == 400
    assert set(response.json()) == ENVELOPE_ERROR_KEYS
    assert response.json()["message"] == message
    incident.refresh_from_db()
    assert incident.status == "firing"


@pytest.mark.parametrize("resolved_by", ["", "alertmanager"])
def test_a_person_s_resolve_needs_a_name_other_than_the_auto_resolver_s(
    resolved_by,
    db,  # noqa: ANN001
):
    from incidents.services import incident_resolve
    from kuberca.errors import InvalidInput

    incident = IncidentFactory()

    with pytest.raises(InvalidInput):
        incident_resolve(incident_id=incident.pk, resolved_by=resolved_by)
    incident.refresh_from_db()
    assert (incident.status, incident.resolved_by) == ("firing", "")

    incident_resolve(incident_id=incident.pk, resolved_by="", automatic=True)
    incident.refresh_from_db()
    assert (incident.status, incident.resolved_by) == ("resolved", "alertmanager")


def test_resolve_rejects_a_resolved_by_longer_than_the_column(auth_client):
    incident = IncidentFactory()

    response = auth_client.post(
        f"/api/v1/incidents/{incident.pk}/resolve",
        {"resolved_by": "x" * 151},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["message"] == "resolved_by is at most 150 characters"
    incident.refresh_from_db()
    assert (incident.status, incident.resolved_by) == ("firing", "")
    ok = auth_client.post(
        f"/api/v1/incidents/{incident.pk}/resolve",
        {"resolved_by": "x" * 150},
        format="json",
    )
    assert ok.status_code == 200
    incident.refresh_from_db()
    assert incident.resolved_by == "x" * 150


def test_resolve_rejects_unknown_id(auth_client):
    response = auth_client.post("/api/v1/incidents/INC-ffffffff/resolve")

    assert response.status_code == 404
    assert set(response.json()) == ENVELOPE_ERROR_KEYS


# Alerts of an incident ------------------------------------------------------


def test_incident_alerts_is_an_array_of_alert_items(auth_client):
    incident = IncidentFactory()
    AlertFactory.create_batch(3, incident=incident)
    AlertFactory()  # another incident's

    response = auth_client.get(f"/api/v1/incidents/{incident.pk}/alerts")

    assert response.status_code == 200
    body = response.json()
    assert len(body) == 3
    assert all(set(item) == ALERT_ITEM_KEYS for item in body)
    assert {item["incident_id"] for item in body} == {incident.pk}
    assert response["X-Total-Count"] == "3"


def test_incident_alerts_filters_and_pages(auth_client):
    incident = IncidentFactory()
    AlertFactory.create_batch(3, incident=incident, severity="critical")
    AlertFactory(incident=incident, severity="info")

    response = auth_client.get(
        f"/api/v1/incidents/{incident.pk}/alerts?severity=critical&limit=2"
    )

    assert len(response.json()) == 2
    assert response["X-Total-Count"] == "3"
    assert 'rel="next"' in response["Link"]


def test_incident_alerts_rejects_unknown_id(auth_client):
    response = auth_client.get("/api/v1/incidents/INC-ffffffff/alerts")

    assert response.status_code == 404
    assert set(response.json()) == ENVELOPE_ERROR_KEYS


# Analyze --------------------------------------------------------------------


def test_analyze_sends_the_analysis_request_signal(auth_client):
    incident = IncidentFactory(resolved=True)
    received = []

    def on_requested(sender, incident_id, **kwargs):  # noqa: ANN001
        received.append(incident_id)

    events.incident_analysis_requested.connect(on_requested)
    try:
        response = auth_client.post(f"/api/v1/incidents/{incident.pk}/analyze")
    finally:
        events.incident_analysis_requested.disconnect(on_requested)

    assert response.status_code == 202
    assert response.json() == {
        "status": "success",
        "message": "analysis requested",
        "incident_id": incident.pk,
    }
    assert received == [incident.pk]


def test_analyze_rejects_unknown_incident(auth_client):
    response = auth_client.post("/api/v1/incidents/INC-ffffffff/analyze")

    assert response.status_code == 404
    assert set(response.json()) == ENVELOPE_ERROR_KEYS


# Mock -----------------------------------------------------------------------


def test_mock_opens_a_firing_warning_incident(auth_client, settings):
    settings.ALLOW_MOCK_INCIDENTS = True

    response = auth_client.post("/api/v1/incidents/mock")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "message", "incident_id"}
    incident = Incident.objects.get(pk=body["incident_id"])
    assert (incident.status, incident.severity, incident.created_by) == (
        "firing",
        "warning",
        "oncall",
    )


def test_incident_ids_are_inc_and_lowercase_hex_never_reused(auth_client, settings):
    settings.ALLOW_MOCK_INCIDENTS = True

    ids = [
        auth_client.post("/api/v1/incidents/mock").json()["incident_id"]
        for _ in range(3)
    ]

    assert all(re.fullmatch(r"INC-[0-9a-f]{8,}", i) for i in ids), ids
    assert len(set(ids)) == 3


def test_mock_is_refused_when_disabled(auth_client, settings):
    settings.ALLOW_MOCK_INCIDENTS = False

    response = auth_client.post("/api/v1/incidents/mock/")

    assert response.status_code == 403
    assert response.json()["error"] == "mock incidents disabled"
    assert not Incident.objects.exists()
