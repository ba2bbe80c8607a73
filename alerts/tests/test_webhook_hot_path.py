"""The webhook's write path: constant statements, repeats that write nothing."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from alerts.models import Alert
from alerts.services import LAST_SEEN_RESOLUTION
from alerts.tests.webhook_helpers import ingest, make_alert, make_payload
from incidents.models import Incident

pytestmark = pytest.mark.django_db


def _alerts(prefix: str, n: int, **kwargs: str) -> list[dict]:
    return [make_alert(fingerprint=f"{prefix}{i:04x}", **kwargs) for i in range(n)]


def test_repeat_within_a_minute_does_not_rewrite_last_seen(clock) -> None:  # noqa: ANN001
    payload = make_payload(*_alerts("aa", 2))
    first_seen = clock.now
    ingest(payload)
    before = Alert.objects.get(fingerprint="aa0000")

    clock.advance(seconds=LAST_SEEN_RESOLUTION.total_seconds() - 5)
    assert ingest(payload).duplicates == 2
    alert = Alert.objects.get(fingerprint="aa0000")
    assert alert.last_seen_at == first_seen
    assert alert.updated_at == before.updated_at

    clock.advance(seconds=10)
    ingest(payload)
    assert Alert.objects.get(fingerprint="aa0000").last_seen_at == clock.now


def test_repeat_with_new_annotations_is_written_at_once(clock) -> None:  # noqa: ANN001
    ingest(make_payload(make_alert(fingerprint="bb01", summary="disk at 80%")))
    clock.advance(seconds=5)
    ingest(make_payload(make_alert(fingerprint="bb01", summary="disk at 95%")))
    alert = Alert.objects.get()
    assert alert.annotations == {"summary": "disk at 95%"}
    assert alert.last_seen_at == clock.now


def test_repeat_of_a_resolved_alert_keeps_it_resolved(clock) -> None:  # noqa: ANN001
    ingest(make_payload(make_alert(fingerprint="cc01")))
    resolved = make_payload(
        make_alert(fingerprint="cc01", status="resolved", ends_at=clock.now)
    )
    assert ingest(resolved).stored == 1
    clock.advance(seconds=5)
    assert ingest(resolved).duplicates == 1
    assert Alert.objects.get().status == "resolved"
    assert Incident.objects.get().status == "resolved"


def _statements(payload: dict) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert ingest(payload).http_status == 200
    return len(queries)


def test_delivery_costs_the_same_statements_for_one_alert_or_fifty(clock) -> None:  # noqa: ANN001
    ingest(make_payload(make_alert(fingerprint="dd00")))  # opens the incident

    one, fifty = make_payload(*_alerts("e", 1)), make_payload(*_alerts("f", 50))
    assert _statements(one) == _statements(fifty)
    clock.advance(minutes=5)
    assert _statements(one) == _statements(fifty)
    # A repeat reads and writes in as few statements as a new alert.
    assert _statements(fifty) <= _statements(make_payload(*_alerts("g", 50)))


def test_delivery_joining_an_incident_sends_one_change_per_incident(clock) -> None:  # noqa: ANN001
    from incidents import events

    calls = []

    def on_changed(sender, incident_id, fields, **kwargs):  # noqa: ANN001, ANN003, ANN202
        calls.append((incident_id, fields))

    ingest(make_payload(make_alert(fingerprint="ee00", severity="warning")))
    incident = Incident.objects.get()
    events.incident_changed.connect(on_changed, weak=False)
    try:
        ingest(make_payload(*_alerts("ef", 3, severity="critical")))
    finally:
        events.incident_changed.disconnect(on_changed)
    assert calls == [(incident.pk, ["alert_count", "severity"])]
    incident.refresh_from_db()
    assert incident.severity == "critical" and incident.last_alert_at == clock.now
    assert Alert.objects.filter(incident=incident).count() == 4


def test_new_incidents_of_one_delivery_open_in_one_statement(clock) -> None:  # noqa: ANN001
    from incidents import events

    def spread(prefix: str, n: int) -> dict:
        return make_payload(
            *(
                make_alert(fingerprint=f"{prefix}{i:04x}", namespace=f"{prefix}-ns{i}")
                for i in range(n)
            )
        )

    announced: list[list[str]] = []

    def on_opened(sender, incident_ids, **kwargs):  # noqa: ANN001, ANN003, ANN202
        announced.append(list(incident_ids))

    events.incident_opened.connect(on_opened, weak=False)
    try:
        two, forty = _statements(spread("aa", 2)), _statements(spread("bb", 40))
        result = ingest(spread("cc", 3))
    finally:
        events.incident_opened.disconnect(on_opened)
    assert two == forty
    assert len(announced) == 3 and [len(ids) for ids in announced] == [2, 40, 3]
    assert sorted(announced[2]) == sorted(result.incidents_opened)
    opened = Incident.objects.filter(pk__in=result.incidents_opened)
    assert sorted(i.group_key for i in opened) == sorted(
        f"cluster=,namespace=cc-ns{i}" for i in range(3)
    )
    for incident in opened:
        alert = Alert.objects.get(incident=incident)
        assert alert.grouping_reason == "new_incident"
        assert incident.last_alert_at == clock.now


def test_alerts_joining_within_a_minute_leave_the_incident_row_alone(clock) -> None:  # noqa: ANN001
    ingest(make_payload(make_alert(fingerprint="ab00", severity="warning")))
    opened = Incident.objects.get()

    clock.advance(seconds=LAST_SEEN_RESOLUTION.total_seconds() - 5)
    ingest(make_payload(*_alerts("ab1", 2, severity="warning")))
    same = Incident.objects.get()
    assert (same.last_alert_at, same.updated_at) == (
        opened.last_alert_at,
        opened.updated_at,
    )

    # A higher severity is written at once, and moves the window with it.
    ingest(make_payload(*_alerts("ab2", 1, severity="critical")))
    raised = Incident.objects.get()
    assert raised.severity == "critical" and raised.last_alert_at == clock.now

    clock.advance(seconds=LAST_SEEN_RESOLUTION.total_seconds() + 1)
    ingest(make_payload(*_alerts("ab3", 1, severity="warning")))
    assert Incident.objects.get().last_alert_at == clock.now
    assert Alert.objects.filter(incident=opened).count() == 5
