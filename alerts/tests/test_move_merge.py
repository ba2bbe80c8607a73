"""A person moves alerts and merges incidents (alert_move, incident_merge)."""

import pytest

from alerts import events
from alerts.models import Alert
from alerts.services import AlertNotFound, alert_move, incident_merge
from alerts.tests.webhook_helpers import T0, ingest, make_alert, make_payload
from incidents.models import Incident
from incidents.services import IncidentNotFound
from kuberca.errors import InvalidInput

pytestmark = pytest.mark.django_db


def fire(name: str, **kwargs: object) -> Alert:
    ingest(make_payload(make_alert(name, fingerprint=name, **kwargs)))
    return Alert.objects.get(fingerprint=name)


def test_moved_alert_stays_where_a_person_put_it(clock) -> None:  # noqa: ANN001
    a = fire("a", namespace="shop")
    b = fire("b", namespace="payments", severity="critical")
    moved: list = []

    def record(**kwargs):
        moved.append(kwargs)

    events.alerts_moved.connect(record, weak=False)
    try:
        alert = alert_move(alert_id=b.pk, incident_id=a.incident_id, moved_by="oncall")
    finally:
        events.alerts_moved.disconnect(record)
    assert alert.incident_id == a.incident_id and alert.grouping_reason == "moved"
    assert moved[0]["alert_ids"] == [b.pk] and moved[0]["reason"] == "moved"
    assert Incident.objects.get(pk=a.incident_id).severity == "critical"

    clock.advance(minutes=1)
    ingest(make_payload(make_alert("b", fingerprint="b", namespace="payments")))
    b.refresh_from_db()
    assert b.incident_id == a.incident_id and b.grouping_reason == "moved"


def test_move_into_its_own_incident_is_a_no_op(clock) -> None:  # noqa: ANN001
    a = fire("a")
    alert = alert_move(alert_id=a.pk, incident_id=a.incident_id, moved_by="oncall")
    assert alert.grouping_reason == "new_incident"


def test_move_rejects_unknown_alert_and_incident(clock) -> None:  # noqa: ANN001
    a = fire("a")
    with pytest.raises(AlertNotFound):
        alert_move(alert_id="ALR-00000000", incident_id=a.incident_id, moved_by="x")
    with pytest.raises(IncidentNotFound):
        alert_move(alert_id=a.pk, incident_id="INC-00000000", moved_by="x")


def test_merge_moves_alerts_into_the_oldest_incident(clock) -> None:  # noqa: ANN001
    a = fire("a", namespace="shop")
    b = fire("b", namespace="payments", starts_at=T0.replace(hour=15))
    c = fire("c", namespace="search", severity="critical")
    target = incident_merge(
        incident_ids=[a.incident_id, b.incident_id, c.incident_id], merged_by="oncall"
    )
    assert target.pk == b.incident_id  # fired first
    assert set(target.alerts.values_list("grouping_reason", flat=True)) == {
        "merged",
        "new_incident",
    }
    assert target.alerts.count() == 3 and target.severity == "critical"
    for other in Incident.objects.exclude(pk=target.pk):
        assert other.status == "resolved"
        assert other.resolved_by == f"merged into {target.pk}"


def test_merge_needs_two_known_incidents(clock) -> None:  # noqa: ANN001
    a = fire("a")
    with pytest.raises(InvalidInput):
        incident_merge(incident_ids=[a.incident_id], merged_by="x")
    with pytest.raises(InvalidInput):
        incident_merge(incident_ids=[a.incident_id, a.incident_id], merged_by="x")
    with pytest.raises(IncidentNotFound):
        incident_merge(incident_ids=[a.incident_id, "INC-00000000"], merged_by="x")
