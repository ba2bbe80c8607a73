"""The recorded Alertmanager outage sequence, replayed in order."""

import pytest
from django.test import Client

from alerts.models import Alert, WebhookDelivery
from alerts.tests.webhook_helpers import OUTAGE
from incidents.models import Incident

pytestmark = pytest.mark.django_db

SHOP = "cluster=,namespace=shop"


def post_file(client: Client, name: str) -> dict:
    body = (OUTAGE / name).read_bytes()
    response = client.post(
        "/webhook/alertmanager", data=body, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def state() -> dict[str, tuple[str, str, str, str | None]]:
    return {
        a.fingerprint: (a.status, a.severity, a.grouping_reason, a.incident_id)
        for a in Alert.objects.all()
    }


def test_outage_sequence_groups_and_resolves_step_by_step(client: Client) -> None:
    body = post_file(client, "01-firing-KubePodCrashLooping.json")
    assert body["status"] == "received"
    assert body["alertCount"] == 3 and body["stored"] == 3
    assert body["duplicates"] == 0 and body["rejected"] == []
    assert body["slackFailed"] == 0
    assert WebhookDelivery.objects.get(pk=body["deliveryId"]).outcome == "processed"
    shop = Incident.objects.get()
    assert shop.group_key == SHOP
    assert shop.title == "KubePodCrashLooping in shop"
    assert shop.severity == "warning" and shop.status == "firing"
    assert shop.created_by == "system"
    assert shop.fired_at.isoformat() == "2026-12-03T16:16:36.138228+00:00"
    reasons = sorted(r for _, _, r, _ in state().values())
    assert reasons == ["joined", "joined", "new_incident"]
    assert {i for *_, i in state().values()} == {shop.pk}

    body = post_file(client, "02-firing-KubeDeploymentReplicasMismatch.json")
    assert body["stored"] == 1
    shop.refresh_from_db()
    assert shop.severity == "critical"
    assert state()["e50041bec9ca3349"] == ("firing", "critical", "joined", shop.pk)
    assert Incident.objects.count() == 1

    body = post_file(client, "03-firing-KubePodCrashLooping.json")
    assert body["stored"] == 1 and body["duplicates"] == 2
    assert state()["40f1d89db4e049de"][0] == "resolved"
    assert Alert.objects.get(
        fingerprint="40f1d89db4e049de"
    ).resolved_at.isoformat() == ("2026-12-03T16:16:37.138228+00:00")
    assert state()["abcd812f8786eda9"][0] == "firing"
    shop.refresh_from_db()
    assert shop.status == "firing"

    body = post_file(client, "04-firing-NodeFilesystemSpaceFillingUp.json")
    node = Incident.objects.get(group_key="cluster=,namespace=kube-system")
    assert node.severity == "critical"
    assert node.title == "NodeFilesystemSpaceFillingUp in kube-system"
    alert = Alert.objects.get(fingerprint="7f06c19936e01350")
    assert len(alert.annotations["description"]) > 5000
    assert alert.labels["instance"] == "10.0.0.7:9100"
    assert alert.grouping_reason == "new_incident"

    body = post_file(client, "05-firing-TargetDown.json")
    assert body["stored"] == 3
    monitoring = Incident.objects.get(group_key="cluster=,namespace=monitoring")
    assert monitoring.truncated_alerts == 3
    delivery = WebhookDelivery.objects.get(pk=body["deliveryId"])
    assert delivery.truncated_alerts == 3
    assert delivery.group_key.startswith('{}/{team="capped"}')
    assert delivery.receiver == "capped"

    body = post_file(client, "06-resolved-KubePodCrashLooping.json")
    assert body["stored"] == 2 and body["duplicates"] == 1
    shop.refresh_from_db()
    assert shop.status == "firing"  # the deployment alert still fires

    body = post_file(client, "07-resolved-KubeDeploymentReplicasMismatch.json")
    assert body["stored"] == 1
    shop.refresh_from_db()
    assert shop.status == "resolved" and shop.resolved_by == "alertmanager"
    assert shop.resolved_at.isoformat() == "2026-12-03T16:16:38.138228+00:00"
    assert Incident.objects.filter(status="firing").count() == 2
    assert Alert.objects.count() == 8
    assert Alert.objects.filter(status="firing").count() == 4


def test_outage_sequence_replayed_twice_changes_nothing(client: Client) -> None:
    files = sorted(p.name for p in OUTAGE.glob("*.json"))
    for name in files:
        post_file(client, name)
    before = (state(), list(Incident.objects.values_list("pk", "status", "severity")))
    for name in files:
        body = post_file(client, name)
        assert body["stored"] == 0
    after = (state(), list(Incident.objects.values_list("pk", "status", "severity")))
    assert after == before
