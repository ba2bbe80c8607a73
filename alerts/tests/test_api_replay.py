"""The API over data made by real Alertmanager deliveries (ingestion service)."""

import json
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from alerts.models import Alert
from alerts.services import delivery_ingest
from incidents.models import Incident

pytestmark = pytest.mark.django_db

FIXTURES = (
    Path(django_settings.BASE_DIR) / "tests" / "fixtures" / "alertmanager"
) / "outage-sequence"


def deliver(payload: dict | bytes) -> None:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    result = delivery_ingest(
        body=body,
        headers={"Content-Type": "application/json"},
        source_address="127.0.0.1",
    )
    assert result.http_status == 200, result.body()


def payload(*alerts: dict, status: str = "firing") -> dict:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="X"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "kuberca",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


def alert(name: str, fingerprint: str, starts: str = "2026-03-01T12:00:00Z") -> dict:
    return {
        "status": "firing",
        "labels": {"alertname": name, "namespace": "shop", "severity": "warning"},
        "annotations": {"summary": f"{name} in shop"},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": fingerprint,
    }


@pytest.fixture
def outage(db):  # noqa: ANN001, ANN201
    files = sorted(FIXTURES.glob("*.json"))
    assert len(files) == 7
    for path in files:
        deliver(path.read_bytes())
    return {
        a["fingerprint"]: a
        for path in files
        for a in json.loads(path.read_text())["alerts"]
    }


def test_incident_list_after_the_outage_sequence(auth_client, outage):
    body = auth_client.get("/api/v1/incidents").json()

    counts = {
        Incident.objects.get(pk=i["incident_id"]).group_key: i["alert_count"]
        for i in body
    }
    assert counts == {
        "cluster=,namespace=shop": 4,
        "cluster=,namespace=kube-system": 1,
        "cluster=,namespace=monitoring": 3,
    }
    fired = [i["fired_at"] for i in body]
    assert fired == sorted(fired, reverse=True)


def test_incident_detail_after_the_outage_sequence(auth_client, outage):
    shop = Incident.objects.get(group_key="cluster=,namespace=shop")

    data = auth_client.get(f"/api/v1/incidents/{shop.pk}").json()["data"]

    assert (data["status"], data["severity"]) == ("resolved", "critical")
    assert data["resolved_by"] == "alertmanager"
    assert data["created_by"] == "system"
    assert data["fired_at"].endswith("Z") and data["resolved_at"].endswith("Z")
    assert len(data["alerts"]) == 4
    assert {a["status"] for a in data["alerts"]} == {"resolved"}
    assert {a["namespace"] for a in data["alerts"]} == {"shop"}
    assert {a["alarm_title"] for a in data["alerts"]} == {
        "KubePodCrashLooping",
        "KubeDeploymentReplicasMismatch",
    }


def test_alert_detail_after_the_outage_sequence(auth_client, outage):
    stored = Alert.objects.get(alarm_title="NodeFilesystemSpaceFillingUp")
    sent = outage[stored.fingerprint]

    body = auth_client.get(f"/api/v1/alerts/{stored.pk}").json()

    assert body["fingerprint"] == sent["fingerprint"]
    assert body["labels"] == sent["labels"]
    assert body["annotations"] == sent["annotations"]  # long, Japanese, emoji
    assert (body["status"], body["severity"]) == ("firing", "critical")
    assert body["resolved_at"] is None
    assert body["namespace"] == "kube-system"
    assert body["grouping_reason"] == "new_incident"
    assert body["analysis_summary"] == ""


def test_alert_filters_after_the_outage_sequence(auth_client, outage):
    shop = auth_client.get("/api/v1/alerts?namespace=shop&status=resolved")
    critical = auth_client.get("/api/v1/alerts?severity=critical&status=firing")

    assert shop["X-Total-Count"] == "4"
    assert [a["alarm_title"] for a in critical.json()] == [
        "NodeFilesystemSpaceFillingUp"
    ]


def test_hiding_a_firing_incident_makes_new_alerts_open_another(auth_client):
    deliver(payload(alert("PodCrash", "aaaa0001")))
    first = Incident.objects.get()

    auth_client.patch(f"/api/v1/incidents/{first.pk}")
    deliver(payload(alert("PodCrash", "aaaa0002")))

    second = Incident.objects.exclude(pk=first.pk).get()
    assert Alert.objects.get(fingerprint="aaaa0002").incident_id == second.pk
    listed = [i["incident_id"] for i in auth_client.get("/api/v1/incidents").json()]
    assert listed == [second.pk]


def test_a_reassigned_alert_stays_where_a_person_put_it(auth_client):
    deliver(payload(alert("PodCrash", "bbbb0001")))
    moved = Alert.objects.get()
    source = moved.incident_id
    target = Incident.objects.create(title="Elsewhere", fired_at=moved.fired_at)

    response = auth_client.put(
        f"/api/v1/alerts/{moved.pk}/incident",
        json.dumps({"incident_id": target.pk}),
        content_type="application/json",
    )
    deliver(payload(alert("PodCrash", "bbbb0001"), alert("PodCrash", "bbbb0002")))

    assert response.status_code == 200
    moved.refresh_from_db()
    assert (moved.incident_id, moved.grouping_reason) == (target.pk, "moved")
    assert Alert.objects.get(fingerprint="bbbb0002").incident_id == source
    detail = auth_client.get(f"/api/v1/alerts/{moved.pk}").json()
    assert detail["grouping_reason"] == "moved"
    assert detail["incident_id"] == target.pk
