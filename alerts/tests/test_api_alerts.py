"""The alert API: items, the bare detail, reassignment and manual analysis."""

import json
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.models import Alert, AlertAnalysis
from alerts.tests.factories import AlertAnalysisFactory, AlertFactory
from incidents.tests.factories import IncidentFactory

pytestmark = pytest.mark.django_db

ITEM_KEYS = {
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
DETAIL_KEYS = {
    "alert_id",
    "incident_id",
    "alarm_title",
    "namespace",
    "severity",
    "status",
    "fired_at",
    "resolved_at",
    "analysis_summary",
    "analysis_detail",
    "fingerprint",
    "thread_ts",
    "grouping_reason",
    "labels",
    "annotations",
    "is_analyzing",
    "analyses",
}
ENVELOPE_ERROR_KEYS = {"status", "message", "error"}

ROUTES = [
    ("get", "/api/v1/alerts"),
    ("get", "/api/v1/alerts/ALR-1"),
    ("put", "/api/v1/alerts/ALR-1/incident"),
    ("post", "/api/v1/alerts/ALR-1/analyze"),
]


def put(client, url, body):  # noqa: ANN001, ANN201
    return client.put(url, json.dumps(body), content_type="application/json")


@pytest.mark.parametrize(("method", "url"), ROUTES)
def test_every_alert_route_rejects_missing_token(api_client, method, url):
    response = getattr(api_client, method)(url)

    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}


# List -----------------------------------------------------------------------


def test_list_returns_visible_alert_items_newest_first(auth_client):
    now = timezone.now()
    old = AlertFactory(fired_at=now - timedelta(hours=1), namespace=None)
    new = AlertFactory(fired_at=now)
    AlertFactory(is_enabled=False)

    response = auth_client.get("/api/v1/alerts")

    assert response.status_code == 200
    body = response.json()
    assert [a["alert_id"] for a in body] == [new.pk, old.pk]
    assert all(set(item) == ITEM_KEYS for item in body)
    assert body[0]["namespace"] == "default"
    assert body[1]["namespace"] is None
    assert body[0]["labels"]["alertname"] == "KubePodCrashLooping"
    assert response["X-Total-Count"] == "2"


def test_list_accepts_trailing_slash(auth_client):
    AlertFactory()

    assert len(auth_client.get("/api/v1/alerts/").json()) == 1


def test_list_includes_alerts_without_incident(auth_client):
    AlertFactory(incident=None)

    assert auth_client.get("/api/v1/alerts").json()[0]["incident_id"] is None


# Detail ---------------------------------------------------------------------


def test_detail_is_bare_with_every_key(auth_client):
    alert = AlertFactory(
        analysis_summary="OOM", thread_ts="1700000000.000100", grouping_reason="moved"
    )

    response = auth_client.get(f"/api/v1/alerts/{alert.pk}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == DETAIL_KEYS
    assert body["alert_id"] == alert.pk
    assert body["incident_id"] == alert.incident_id
    assert body["analysis_summary"] == "OOM"
    assert body["thread_ts"] == "1700000000.000100"
    assert body["grouping_reason"] == "moved"
    assert body["annotations"] == alert.annotations
    assert body["analyses"] == []
    assert body["is_analyzing"] is False


def test_detail_lists_the_newest_analysis_per_status(auth_client):
    alert = AlertFactory(resolved=True)
    AlertAnalysisFactory(alert=alert, status="firing", summary="first")
    AlertAnalysisFactory(
        alert=alert, status="firing", summary="again", trigger="manual"
    )
    AlertAnalysisFactory(alert=alert, status="resolved", summary="over")

    body = auth_client.get(f"/api/v1/alerts/{alert.pk}/").json()

    assert [(a["status"], a["summary"]) for a in body["analyses"]] == [
        ("resolved", "over"),
        ("firing", "again"),
    ]
    assert set(body["analyses"][0]) == {
        "analysis_id",
        "status",
        "summary",
        "detail",
        "created_at",
    }
    assert body["analyses"][0]["created_at"].endswith("Z")


@pytest.mark.parametrize(
    ("state", "analyzing"), [("pending", True), ("running", True), ("failed", False)]
)
def test_detail_is_analyzing_while_an_analysis_is_unfinished(
    auth_client, state, analyzing
):
    analysis = AlertAnalysisFactory(state=state)

    body = auth_client.get(f"/api/v1/alerts/{analysis.alert_id}").json()

    assert body["is_analyzing"] is analyzing


def test_detail_rejects_unknown_id_in_envelope(auth_client):
    response = auth_client.get("/api/v1/alerts/ALR-ffffffff")

    assert response.status_code == 404
    assert response.json() == {
        "status": "error",
        "message": "alert not found",
        "error": "alert not found",
    }


# Reassign -------------------------------------------------------------------


def test_reassign_moves_the_alert_and_pins_it(auth_client):
    alert = AlertFactory()
    target = IncidentFactory()

    response = put(
        auth_client, f"/api/v1/alerts/{alert.pk}/incident", {"incident_id": target.pk}
    )

    assert response.status_code == 200
    assert response.json() == {
        "status": "success",
        "message": "alert moved",
        "alert_id": alert.pk,
    }
    alert.refresh_from_db()
    assert (alert.incident_id, alert.grouping_reason) == (target.pk, "moved")


@pytest.mark.parametrize(
    "body", [{}, {"incident_id": ""}, {"incident_id": 7}, {"incident_id": None}]
)
def test_reassign_requires_an_incident_id_string(auth_client, body):
    alert = AlertFactory()

    response = put(auth_client, f"/api/v1/alerts/{alert.pk}/incident", body)

    assert response.status_code == 400
    assert set(response.json()) == ENVELOPE_ERROR_KEYS
    assert "incident_id" in response.json()["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"incident_id": 7}, "incident_id must be a string"),
        ({"incident_id": ["INC-1"]}, "incident_id must be a string"),
        ({"incident_id": None}, "incident_id is required"),
        ({"incident_id": "  "}, "incident_id is required"),
    ],
)
def test_reassign_says_whether_the_incident_id_is_missing_or_not_a_string(
    auth_client,  # noqa: ANN001
    body: dict,
    message: str,
) -> None:
    alert = AlertFactory()

    response = put(auth_client, f"/api/v1/alerts/{alert.pk}/incident", body)

    assert response.status_code == 400
    assert response.json()["message"] == message


@pytest.mark.parametrize("raw", ["[]", "{nope"])
def test_reassign_rejects_a_body_that_is_not_an_object(auth_client, raw):
    alert = AlertFactory()

    response = auth_client.put(
        f"/api/v1/alerts/{alert.pk}/incident", raw, content_type="application/json"
    )

    assert response.status_code == 400
    assert set(response.json()) == ENVELOPE_ERROR_KEYS


def test_reassign_rejects_unknown_incident(auth_client):
    alert = AlertFactory()

    response = put(
        auth_client, f"/api/v1/alerts/{alert.pk}/incident", {"incident_id": "INC-0"}
    )

    assert response.status_code == 404
    assert set(response.json()) == ENVELOPE_ERROR_KEYS
    alert.refresh_from_db()
    assert alert.grouping_reason == "joined"


def test_reassign_rejects_unknown_alert(auth_client):
    target = IncidentFactory()

    response = put(
        auth_client, "/api/v1/alerts/ALR-ffffffff/incident", {"incident_id": target.pk}
    )

    assert response.status_code == 404
    assert set(response.json()) == ENVELOPE_ERROR_KEYS


# Analyze --------------------------------------------------------------------


def test_analyze_creates_a_pending_manual_analysis(auth_client, settings):
    settings.AGENT_ENABLED = True
    settings.AGENT_URL = "http://127.0.0.1:9"
    alert = AlertFactory()

    response = auth_client.post(f"/api/v1/alerts/{alert.pk}/analyze")

    assert response.status_code == 202
    assert response.json() == {
        "status": "success",
        "message": "analysis requested",
        "alert_id": alert.pk,
    }
    analysis = AlertAnalysis.objects.get(alert=alert)
    assert (analysis.trigger, analysis.state) == ("manual", "pending")
    detail = auth_client.get(f"/api/v1/alerts/{alert.pk}").json()
    assert detail["is_analyzing"] is True


def test_analyze_rejects_unknown_alert(auth_client):
    response = auth_client.post("/api/v1/alerts/ALR-ffffffff/analyze")

    assert response.status_code == 404
    assert set(response.json()) == ENVELOPE_ERROR_KEYS


def test_analyze_answers_503_when_analysis_is_not_installed(auth_client, monkeypatch):
    monkeypatch.setitem(sys.modules, "alerts.analysis", None)
    alert = AlertFactory()

    response = auth_client.post(f"/api/v1/alerts/{alert.pk}/analyze")

    assert response.status_code == 503
    assert response.json()["error"] == "service unavailable"
    assert not AlertAnalysis.objects.exists()
    assert Alert.objects.count() == 1
