"""Alert identity, dedup and the severity gate (SPEC §3.1, §3.2)."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from alerts import events
from alerts.models import Alert
from alerts.payload import compute_fingerprint, parse_payload, parse_time
from alerts.tests.webhook_helpers import (
    OUTAGE,
    T0,
    ingest,
    make_alert,
    make_payload,
)
from incidents.models import Incident

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent() -> dict[str, list]:
    calls: dict[str, list] = {"fired": [], "resolved": []}

    def on_fired(sender, alert_ids, **kwargs):  # noqa: ANN001, ANN003, ANN202
        calls["fired"].append(list(alert_ids))

    def on_resolved(sender, alert_ids, stale, **kwargs):  # noqa: ANN001, ANN003, ANN202
        calls["resolved"].append((list(alert_ids), stale))

    events.alerts_fired.connect(on_fired, weak=False)
    events.alerts_resolved.connect(on_resolved, weak=False)
    yield calls
    events.alerts_fired.disconnect(on_fired)
    events.alerts_resolved.disconnect(on_resolved)


def test_refire_with_new_starts_at_makes_a_second_alert(clock, sent) -> None:  # noqa: ANN001
    firing = make_payload(make_alert(fingerprint="aa01"))
    resolved = make_payload(
        make_alert(status="resolved", fingerprint="aa01", ends_at=T0 + timedelta(1))
    )
    assert ingest(firing).stored == 1
    assert ingest(resolved).stored == 1
    first = Alert.objects.get()
    assert first.status == "resolved"

    # A late or replayed firing of the resolved occurrence changes nothing.
    late = ingest(firing)
    assert (late.stored, late.duplicates) == (0, 1)
    first.refresh_from_db()
    assert first.status == "resolved"

    later = T0 + timedelta(hours=2)
    clock.now = later + timedelta(minutes=1)
    again = ingest(make_payload(make_alert(fingerprint="aa01", starts_at=later)))
    assert again.stored == 1
    assert Alert.objects.count() == 2
    assert Alert.objects.filter(status="firing").get().fired_at == later
    assert len(sent["fired"]) == 2 and len(sent["resolved"]) == 1


def test_a_late_firing_never_brings_back_an_alert_alertmanager_resolved(
    clock,  # noqa: ANN001
    sent,  # noqa: ANN001
) -> None:
    firing = make_payload(make_alert(fingerprint="late1"))
    ingest(firing)
    ingest(
        make_payload(
            make_alert(status="resolved", fingerprint="late1", ends_at=clock.now)
        )
    )
    clock.advance(minutes=10)

    late = ingest(firing)

    assert (late.stored, late.duplicates) == (0, 1)
    alert = Alert.objects.get()
    assert alert.status == "resolved" and not alert.resolved_as_stale
    assert Incident.objects.get().status == "resolved"
    assert len(sent["fired"]) == 1


def test_stored_alerts_get_ids_as_long_as_the_column_holds(clock) -> None:  # noqa: ANN001
    ingest(make_payload(*(make_alert(fingerprint=f"id{n}") for n in range(3))))

    ids = list(Alert.objects.values_list("alert_id", flat=True))
    column = Alert._meta.get_field("alert_id").max_length
    assert len(ids) == 3
    assert all(re.fullmatch(r"ALR-[0-9a-f]{28}", i) for i in ids), ids
    assert {len(i) for i in ids} == {column}


def test_repeat_of_firing_alert_sends_no_signal(clock, sent) -> None:  # noqa: ANN001
    payload = make_payload(make_alert(fingerprint="aa02"), make_alert(fingerprint="b2"))
    ingest(payload)
    clock.advance(minutes=5)
    result = ingest(payload)
    assert (result.stored, result.duplicates) == (0, 2)
    assert len(sent["fired"]) == 1 and len(sent["fired"][0]) == 2
    assert Alert.objects.get(fingerprint="aa02").last_seen_at == clock.now


def test_resolved_alert_never_seen_firing_is_stored_without_incident(clock) -> None:  # noqa: ANN001
    result = ingest(
        make_payload(make_alert(status="resolved", ends_at=T0 + timedelta(minutes=3)))
    )
    assert result.stored == 1
    alert = Alert.objects.get()
    assert alert.status == "resolved" and alert.incident is None
    assert alert.grouping_reason == "ungrouped"
    assert Incident.objects.count() == 0
    assert (
        ingest(
            make_payload(
                make_alert(status="resolved", ends_at=T0 + timedelta(minutes=3))
            )
        ).duplicates
        == 1
    )


def _timeless(alert: dict) -> dict:
    """The alert with no startsAt and a zero endsAt, as some senders post."""
    alert = {**alert, "endsAt": "0001-01-01T00:00:00Z"}
    del alert["startsAt"]
    return alert


def test_retries_of_a_timeless_resolved_alert_store_it_once(clock) -> None:  # noqa: ANN001
    ingest(make_payload(make_alert(fingerprint="open1")))
    gone = make_payload(_timeless(make_alert(status="resolved", fingerprint="gone1")))

    first = ingest(gone)
    retries = []
    for _ in range(2):
        clock.advance(seconds=30)
        retries.append(ingest(gone))

    assert first.stored == 1
    assert [(r.stored, r.duplicates) for r in retries] == [(0, 1), (0, 1)]
    assert Alert.objects.filter(fingerprint="gone1").count() == 1
    incident = Incident.objects.get()
    assert incident.alerts.count() == 2


def test_a_resolved_alert_without_start_time_is_known_by_its_end(clock) -> None:  # noqa: ANN001
    ended = clock.now - timedelta(minutes=1)
    alert = make_alert(status="resolved", fingerprint="end1", ends_at=ended)
    del alert["startsAt"]
    gone = make_payload(alert)

    first = ingest(gone)
    clock.advance(seconds=30)
    retry = ingest(gone)

    assert (first.stored, retry.stored, retry.duplicates) == (1, 0, 1)
    stored = Alert.objects.get()
    assert stored.fired_at == stored.resolved_at == ended


def test_a_timeless_resolve_resolves_its_firing_alert_once(clock, sent) -> None:  # noqa: ANN001
    ingest(make_payload(_timeless(make_alert(fingerprint="tl1"))))
    clock.advance(minutes=2)
    resolve = make_payload(_timeless(make_alert(status="resolved", fingerprint="tl1")))

    results = [ingest(resolve)]
    for _ in range(2):
        clock.advance(seconds=30)
        results.append(ingest(resolve))

    assert [(r.stored, r.duplicates) for r in results] == [(1, 0), (0, 1), (0, 1)]
    alert = Alert.objects.get(fingerprint="tl1")
    assert alert.status == "resolved"
    assert len(sent["resolved"]) == 1


def test_a_replayed_timeless_resolve_leaves_a_later_occurrence_alone(clock) -> None:  # noqa: ANN001
    from alerts.services import delivery_replay

    ingest(make_payload(make_alert(fingerprint="rp1")))
    clock.advance(minutes=5)
    ended = make_alert(status="resolved", fingerprint="rp1", ends_at=clock.now)
    ingest(make_payload(ended))
    clock.advance(minutes=1)
    timeless = ingest(
        make_payload(_timeless(make_alert(status="resolved", fingerprint="rp1")))
    )
    clock.advance(hours=2)
    later = clock.now - timedelta(seconds=10)
    ingest(make_payload(make_alert(fingerprint="rp1", starts_at=later)))
    clock.advance(minutes=1)

    replayed = delivery_replay(delivery_id=timeless.delivery_id)

    assert (timeless.stored, timeless.duplicates) == (0, 1)
    assert (replayed.stored, replayed.duplicates) == (0, 1)
    assert Alert.objects.get(fingerprint="rp1", fired_at=later).status == "firing"
    assert Incident.objects.filter(status="firing").count() == 1


def test_a_timeless_resolve_after_a_resolve_in_the_same_delivery_is_a_duplicate(
    clock,  # noqa: ANN001
) -> None:
    both = make_payload(
        make_alert(status="resolved", fingerprint="sd1", ends_at=T0),
        _timeless(make_alert(status="resolved", fingerprint="sd1")),
    )

    result = ingest(both)

    assert (result.stored, result.duplicates) == (1, 1)
    assert Alert.objects.filter(fingerprint="sd1").count() == 1


def test_a_timeless_resolve_of_a_new_fingerprint_is_still_stored(clock) -> None:  # noqa: ANN001
    ingest(make_payload(_timeless(make_alert(status="resolved", fingerprint="n1"))))
    clock.advance(minutes=1)

    other = ingest(
        make_payload(_timeless(make_alert(status="resolved", fingerprint="n2")))
    )

    assert (other.stored, other.duplicates) == (1, 0)
    assert Alert.objects.filter(status="resolved").count() == 2


def test_resolved_alert_never_resolves_before_it_fired(clock) -> None:  # noqa: ANN001
    ends_early = make_alert(status="resolved", ends_at=T0 - timedelta(minutes=2))
    assert ingest(make_payload(ends_early)).stored == 1
    alert = Alert.objects.get()
    assert alert.fired_at == T0
    assert alert.resolved_at == T0


def test_resolved_only_alert_joins_the_open_incident_of_its_key(clock) -> None:  # noqa: ANN001
    ingest(make_payload(make_alert("A", fingerprint="f1")))
    ingest(
        make_payload(make_alert("B", status="resolved", fingerprint="f2", ends_at=T0))
    )
    incident = Incident.objects.get()
    assert Alert.objects.get(fingerprint="f2").incident == incident
    assert incident.status == "firing"


def test_firing_without_starts_at_match_updates_the_firing_alert(clock) -> None:  # noqa: ANN001
    ingest(make_payload(make_alert(fingerprint="aa03", pod="a")))
    restarted = make_alert(fingerprint="aa03", pod="b", starts_at=T0 + timedelta(1))
    result = ingest(make_payload(restarted))
    assert (result.stored, result.duplicates) == (0, 1)
    alert = Alert.objects.get()
    assert alert.fired_at == T0 and alert.labels["pod"] == "b"


def test_resolved_with_zero_ends_at_resolves_at_receipt(clock) -> None:  # noqa: ANN001
    ingest(make_payload(make_alert(fingerprint="aa04")))
    clock.advance(minutes=7)
    ingest(make_payload(make_alert(status="resolved", fingerprint="aa04")))
    alert = Alert.objects.get()
    assert alert.status == "resolved" and alert.resolved_at == clock.now
    incident = Incident.objects.get()
    assert incident.status == "resolved" and incident.resolved_by == "alertmanager"


def test_each_alert_status_decides_not_the_group_status(clock) -> None:  # noqa: ANN001
    payload = make_payload(make_alert(fingerprint="aa05"), status="resolved")
    ingest(payload)
    assert Alert.objects.get().status == "firing"


def test_severity_gate_ignores_other_severities(clock) -> None:  # noqa: ANN001
    result = ingest(
        make_payload(
            make_alert("Watchdog", severity="none"),
            make_alert("NoSeverity", severity=None),
            make_alert("Loud", severity="CRITICAL"),
        )
    )
    assert (result.stored, result.ignored) == (2, 1)
    assert Alert.objects.get(alarm_title="NoSeverity").severity == "warning"
    assert Alert.objects.get(alarm_title="Loud").severity == "critical"
    assert not Alert.objects.filter(alarm_title="Watchdog").exists()


def test_an_ignored_severity_is_warned_of_once_and_none_never(
    clock,
    caplog,
    monkeypatch,  # noqa: ANN001
) -> None:
    from alerts import services

    monkeypatch.setattr(services, "_warned_severities", set())
    payload = make_payload(
        make_alert("Pager", severity="page"),
        make_alert("Watchdog", severity="none"),
    )
    with caplog.at_level("WARNING", logger="alerts.services"):
        ingest(payload)
        ingest(make_payload(make_alert("Pager2", severity="PAGE")))
        ingest(make_payload(make_alert("Major", severity="major\nforged line")))

    warned = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert warned == [
        "webhook alerts ignored: severity 'page' not in INGEST_SEVERITIES "
        "(critical,warning,info); add it there to keep such alerts",
        "webhook alerts ignored: severity 'major\\nforged line' not in "
        "INGEST_SEVERITIES (critical,warning,info); add it there to keep such alerts",
    ]


def test_warned_severities_are_bounded(clock, caplog, monkeypatch) -> None:  # noqa: ANN001
    from alerts import services

    monkeypatch.setattr(services, "_warned_severities", set())
    monkeypatch.setattr(services, "_WARNED_SEVERITIES_MAX", 2)
    with caplog.at_level("WARNING", logger="alerts.services"):
        ingest(make_payload(*(make_alert(f"A{n}", severity=f"s{n}") for n in range(3))))
        ingest(make_payload(make_alert("B", severity="s9")))

    assert services._warned_severities == {"s0", "s1"}


def test_a_warned_severity_is_kept_cut_short(clock, caplog, monkeypatch) -> None:  # noqa: ANN001
    from alerts import services

    monkeypatch.setattr(services, "_warned_severities", set())
    with caplog.at_level("WARNING", logger="alerts.services"):
        ingest(make_payload(make_alert("Huge", severity="x" * 100_000)))

    assert services._warned_severities == {"x" * 64}
    assert repr("x" * 64) in caplog.text and "x" * 65 not in caplog.text
    assert len([r for r in caplog.records if "ignored" in r.getMessage()]) == 1


def test_an_alert_without_severity_passes_the_gate_as_a_warning(
    clock,  # noqa: ANN001
    settings,  # noqa: ANN001
) -> None:
    settings.INGEST_SEVERITIES = ["critical", "warning"]
    result = ingest(
        make_payload(
            make_alert("NoSeverity", severity=None),
            make_alert("Quiet", severity="info"),
        )
    )
    assert (result.stored, result.ignored) == (1, 1)
    assert Alert.objects.get().alarm_title == "NoSeverity"
    assert Incident.objects.get().severity == "warning"


def test_an_alert_status_is_read_whatever_its_case(clock) -> None:  # noqa: ANN001
    ingest(make_payload(make_alert(status="Firing", fingerprint="case1")))
    assert Alert.objects.get().status == "firing"
    result = ingest(make_payload(make_alert(status=" RESOLVED ", fingerprint="case1")))
    assert (result.stored, result.rejected) == (1, [])
    assert Alert.objects.get().status == "resolved"


def test_a_truncated_group_stays_recorded_on_its_incident(clock) -> None:  # noqa: ANN001
    ingest(make_payload(make_alert("a", fingerprint="tg1"), truncatedAlerts=3))
    incident = Incident.objects.get()
    assert incident.truncated_alerts == 3
    clock.advance(minutes=5)

    ingest(make_payload(make_alert("b", fingerprint="tg2"), truncatedAlerts=0))

    assert Alert.objects.get(fingerprint="tg2").incident == incident
    incident.refresh_from_db()
    assert incident.truncated_alerts == 3


def test_a_repeat_in_a_truncated_delivery_records_it_on_the_incident(clock) -> None:  # noqa: ANN001
    alert = make_alert("a", fingerprint="tg3")
    ingest(make_payload(alert))
    clock.advance(minutes=5)

    result = ingest(make_payload(alert, truncatedAlerts=4))

    assert result.duplicates == 1
    assert Incident.objects.get().truncated_alerts == 4


def test_zero_ends_at_of_year_one_means_not_ended() -> None:
    assert parse_time("0001-01-01T00:00:00Z") is None
    assert parse_time("0001-01-01T00:00:00.000+00:00") is None
    assert parse_time("") is None and parse_time(None) is None


def test_timestamps_with_nanoseconds_and_offsets_parse() -> None:
    assert parse_time("2018-03-07T06:33:21.873077559-05:00") == datetime(
        2018, 3, 7, 11, 33, 21, 873077, tzinfo=UTC
    )
    assert parse_time("2024-09-27T00:27:00+08:00") == datetime(
        2024, 9, 26, 16, 27, tzinfo=UTC
    )
    assert parse_time("2016-04-27T20:46:37.903Z").microsecond == 903000
    # RFC 3339 lets T and Z be lower case.
    assert parse_time("2016-04-27t20:46:37.903z") == datetime(
        2016, 4, 27, 20, 46, 37, 903000, tzinfo=UTC
    )
    with pytest.raises(ValueError):
        parse_time("yesterday")
    with pytest.raises(ValueError):
        parse_time("2024-09-27T00:27:00")


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-01T00:00:00xZ",  # a stray character before the offset
        "2026-01-01T00:00:00\x00Z",
        "2026-W01-1T00:00:00Z",  # ISO 8601 week date
        "20260101T000000Z",  # ISO 8601 basic format
        "2026-01-01T12Z",  # no minutes or seconds
        "2026-01-01T00:00:00+0100",  # offset without its colon
        "2026-01-01T00:00:00.5+01",
    ],
)
def test_timestamps_that_are_not_rfc_3339_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


def test_an_offset_takes_minutes_up_to_59() -> None:
    assert parse_time("2026-01-01T00:00:00+23:59") == datetime(
        2025, 12, 31, 0, 1, tzinfo=UTC
    )
    # fromisoformat reads "+05:99" as an offset of 6 h 39 min.
    for text in ("2026-01-01T00:00:00+05:99", "2026-01-01T00:00:00-00:60"):
        with pytest.raises(ValueError):
            parse_time(text)


def test_alert_with_a_start_time_that_is_not_rfc_3339_is_rejected(clock) -> None:  # noqa: ANN001
    bad = make_alert("A", fingerprint="rfc1")
    bad["startsAt"] = "2026-01-01T00:00:00xZ"
    result = ingest(make_payload(bad, make_alert("B", fingerprint="rfc2")))
    assert result.stored == 1
    assert [r["index"] for r in result.rejected] == [0]
    assert "startsAt" in result.rejected[0]["reason"]
    assert list(Alert.objects.values_list("fingerprint", flat=True)) == ["rfc2"]


def test_missing_fingerprint_is_computed_from_the_sorted_label_set() -> None:
    recorded = (OUTAGE / "01-firing-KubePodCrashLooping.json").read_bytes()
    alert = parse_payload(recorded).alerts[0]
    # Alertmanager's own fingerprint for this label set.
    assert compute_fingerprint(alert.labels) == alert.fingerprint == "40f1d89db4e049de"
    reordered = dict(reversed(list(alert.labels.items())))
    assert compute_fingerprint(reordered) == "40f1d89db4e049de"
    payload = make_payload(make_alert(fingerprint=None, pod="x"))
    parsed = parse_payload(str.encode(__import__("json").dumps(payload)))
    assert parsed.alerts[0].fingerprint == compute_fingerprint(parsed.alerts[0].labels)


def test_number_group_key_is_kept_as_its_text() -> None:
    body = b'{"groupKey": 5615590933959184469, "alerts": []}'
    assert parse_payload(body).group_key == "5615590933959184469"


def test_grafana_extras_and_version_are_accepted(clock) -> None:  # noqa: ANN001
    alert = make_alert(fingerprint="gf1")
    alert.update(values=None, valueString="x", silenceURL="u", dashboardURL="d")
    payload = make_payload(alert, version="1", orgId=1, title="t", state="alerting")
    assert ingest(payload).stored == 1


def test_start_time_in_year_one_is_a_time_not_zero(clock) -> None:  # noqa: ANN001
    alert = make_alert(fingerprint="y1")
    alert["startsAt"] = "0001-01-01T00:00:01Z"
    payload = make_payload(alert)
    ingest(payload)
    assert ingest(payload).stored == 0
    assert Alert.objects.get().fired_at.year == 1


def test_identical_label_sets_in_one_payload_are_one_alert(clock) -> None:  # noqa: ANN001
    first, second = make_alert(pod="p"), make_alert(pod="p", summary="other")
    payload = make_payload(first, second)
    del payload["alerts"][1]["status"]  # the group's status stands in
    result = ingest(payload)
    assert (result.stored, result.duplicates) == (1, 1)
    assert Alert.objects.get().annotations == {"summary": "other"}


def test_an_alert_arriving_resolved_still_counts_for_the_incident_severity(
    clock,
) -> None:  # noqa: ANN001
    ingest(make_payload(make_alert(fingerprint="sv01", severity="warning")))
    incident = Incident.objects.get()

    resolved_critical = make_alert(
        fingerprint="sv02", severity="critical", status="resolved", ends_at=clock.now
    )
    ingest(make_payload(resolved_critical))

    incident.refresh_from_db()
    assert Alert.objects.get(fingerprint="sv02").incident_id == incident.pk
    assert incident.severity == "critical"


def test_a_new_incident_takes_the_severity_of_resolved_alerts_with_it(clock) -> None:  # noqa: ANN001
    ingest(
        make_payload(
            make_alert(fingerprint="sv11", severity="info"),
            make_alert(
                fingerprint="sv12",
                severity="critical",
                status="resolved",
                ends_at=clock.now,
            ),
        )
    )

    incident = Incident.objects.get()
    assert incident.severity == "critical"
    assert Alert.objects.filter(incident=incident).count() == 2


def test_firing_and_resolved_in_one_delivery_open_and_resolve_an_incident(
    clock,  # noqa: ANN001
    sent,  # noqa: ANN001
) -> None:
    both = make_payload(
        make_alert(fingerprint="fr1"),
        make_alert(
            status="resolved", fingerprint="fr1", ends_at=T0 + timedelta(minutes=5)
        ),
    )

    result = ingest(both)

    alert = Alert.objects.get()
    assert alert.status == "resolved"
    assert alert.grouping_reason == "new_incident"
    incident = Incident.objects.get()
    assert alert.incident_id == incident.pk
    assert incident.status == "resolved" and incident.resolved_by == "alertmanager"
    assert result.incidents_opened == [incident.pk]
    # Counted per alert of the body, as always: both changed the one row.
    assert (result.stored, result.duplicates, result.alert_count) == (2, 0, 2)
    assert sent["fired"] == [[alert.alert_id]]
    assert sent["resolved"] == [([alert.alert_id], False)]


def test_an_end_after_the_time_of_receipt_is_taken_as_the_time_of_receipt(
    clock,  # noqa: ANN001
    settings,  # noqa: ANN001
) -> None:
    ingest(make_payload(make_alert(fingerprint="fut1")))
    clock.advance(minutes=5)
    far = datetime(9999, 1, 1, tzinfo=UTC)

    ingest(make_payload(make_alert(status="resolved", fingerprint="fut1", ends_at=far)))

    alert = Alert.objects.get()
    assert alert.resolved_at == clock.now
    first = Incident.objects.get()
    assert first.status == "resolved" and first.resolved_at == clock.now
    # Past the reopen window, a new alert of the key opens a new incident.
    clock.advance(seconds=settings.INCIDENT_REOPEN_WINDOW.total_seconds() + 60)
    later = clock.now - timedelta(seconds=30)
    ingest(make_payload(make_alert(fingerprint="fut2", starts_at=later)))
    assert Incident.objects.count() == 2


def test_an_alert_firing_in_the_future_resolves_its_incident_no_later_than_now(
    clock,  # noqa: ANN001
) -> None:
    far = datetime(9999, 1, 1, tzinfo=UTC)
    ingest(make_payload(make_alert(fingerprint="ff1", starts_at=far)))
    clock.advance(minutes=5)

    ingest(
        make_payload(
            make_alert(status="resolved", fingerprint="ff1", starts_at=far, ends_at=far)
        )
    )

    incident = Incident.objects.get()
    assert incident.status == "resolved" and incident.resolved_at == clock.now
