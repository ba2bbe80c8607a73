"""Grouping into incidents with controlled time (SPEC §3.3)."""

from datetime import timedelta

import pytest
from django.db import connection

from alerts.models import Alert
from alerts.services import alerts_resolve_stale
from alerts.tasks import resolve_stale_alerts
from alerts.tests.webhook_helpers import (
    T0,
    ingest,
    make_alert,
    make_payload,
)
from incidents.models import Incident

pytestmark = pytest.mark.django_db


def fire(name: str, **kwargs: object) -> None:
    ingest(make_payload(make_alert(name, fingerprint=name, **kwargs)))


def resolve(name: str, **kwargs: object) -> None:
    ingest(
        make_payload(make_alert(name, status="resolved", fingerprint=name, **kwargs))
    )


def reason(name: str) -> str:
    return Alert.objects.get(fingerprint=name).grouping_reason


def test_alerts_of_other_namespaces_open_their_own_incidents(clock) -> None:  # noqa: ANN001
    fire("a", namespace="shop")
    fire("b", namespace="payments")
    fire("c", namespace="shop", cluster="eu")
    assert Incident.objects.count() == 3
    assert set(Incident.objects.values_list("group_key", flat=True)) == {
        "cluster=,namespace=shop",
        "cluster=,namespace=payments",
        "cluster=eu,namespace=shop",
    }


def test_label_values_holding_the_keys_separators_make_no_other_groups_key(
    clock,  # noqa: ANN001
) -> None:
    # Written as they were, both keys read "cluster=x,namespace=y,namespace=z".
    fire("a", cluster="x,namespace=y", namespace="z")
    fire("b", cluster="x", namespace="y,namespace=z")
    fire("c", cluster="x\\", namespace="y")
    fire("d", cluster="x\\,namespace=y", namespace="")

    assert Incident.objects.count() == 4
    assert set(Incident.objects.values_list("group_key", flat=True)) == {
        "cluster=x\\,namespace\\=y,namespace=z",
        "cluster=x\\\\,namespace=y",
        "cluster=x\\\\\\,namespace\\=y,namespace=",
        "cluster=x,namespace=y\\,namespace\\=z",
    }


def test_group_window_counts_from_the_last_alert_that_joined(clock, settings) -> None:  # noqa: ANN001
    settings.INCIDENT_GROUP_WINDOW = timedelta(minutes=60)
    fire("a")
    clock.advance(minutes=50)
    fire("b")
    clock.advance(minutes=50)  # 100 minutes after the first, 50 after the last
    fire("c")
    assert Incident.objects.count() == 1
    assert [reason(n) for n in "abc"] == ["new_incident", "joined", "joined"]
    clock.advance(minutes=61)
    fire("d")
    assert Incident.objects.count() == 2
    assert reason("d") == "new_incident"


def test_max_age_stops_a_trickle_growing_one_incident(clock, settings) -> None:  # noqa: ANN001
    settings.INCIDENT_MAX_AGE = timedelta(hours=2)
    fire("a")
    for index in range(4):
        clock.advance(minutes=35)
        fire(f"t{index}")
    first = Alert.objects.get(fingerprint="a").incident
    assert Alert.objects.get(fingerprint="t1").incident == first
    assert Alert.objects.get(fingerprint="t2").incident == first  # at 105 minutes
    assert Alert.objects.get(fingerprint="t3").incident != first  # at 140 minutes
    assert reason("t3") == "new_incident"


def test_reopen_window_brings_back_an_auto_resolved_incident(clock, settings) -> None:  # noqa: ANN001
    settings.INCIDENT_REOPEN_WINDOW = timedelta(minutes=15)
    fire("a")
    clock.advance(minutes=5)
    resolve("a", ends_at=clock.now)
    incident = Incident.objects.get()
    assert incident.status == "resolved"
    clock.advance(minutes=10)
    fire("b")
    incident.refresh_from_db()
    assert incident.status == "firing" and incident.resolved_by == ""
    assert reason("b") == "reopened"
    assert Incident.objects.count() == 1

    clock.advance(minutes=1)
    resolve("b", ends_at=clock.now)
    clock.advance(minutes=16)
    fire("c")
    assert Incident.objects.count() == 2
    assert reason("c") == "new_incident"


# Just inside a 60-minute group window, and exactly at its end.
@pytest.mark.parametrize(
    ("after", "joined"),
    [
        (timedelta(minutes=60) - timedelta(microseconds=1), True),
        (timedelta(minutes=60), False),
    ],
)
def test_group_window_takes_incidents_whose_last_alert_joined_less_than_it_ago(
    clock,  # noqa: ANN001
    settings,  # noqa: ANN001
    after: timedelta,
    joined: bool,
) -> None:
    settings.INCIDENT_GROUP_WINDOW = timedelta(minutes=60)
    fire("a")
    clock.advance(seconds=after.total_seconds())

    fire("b")

    assert (Incident.objects.count() == 1) is joined
    assert reason("b") == ("joined" if joined else "new_incident")


# Just inside a 15-minute reopen window, and exactly at its end.
AROUND_THE_REOPEN_WINDOW = pytest.mark.parametrize(
    ("after", "reopened"),
    [
        (timedelta(minutes=15) - timedelta(microseconds=1), True),
        (timedelta(minutes=15), False),
    ],
)


@AROUND_THE_REOPEN_WINDOW
def test_reopen_window_takes_incidents_resolved_less_than_it_ago(
    clock,  # noqa: ANN001
    settings,  # noqa: ANN001
    after: timedelta,
    reopened: bool,
) -> None:
    settings.INCIDENT_REOPEN_WINDOW = timedelta(minutes=15)
    fire("a")
    resolve("a", ends_at=clock.now)
    clock.advance(seconds=after.total_seconds())

    fire("b")

    assert (Incident.objects.count() == 1) is reopened
    assert reason("b") == ("reopened" if reopened else "new_incident")


@AROUND_THE_REOPEN_WINDOW
def test_stale_alert_reopens_its_incident_resolved_less_than_the_window_ago(
    clock,  # noqa: ANN001
    settings,  # noqa: ANN001
    after: timedelta,
    reopened: bool,
) -> None:
    settings.ALERT_STALE_AFTER = timedelta(hours=1)
    settings.INCIDENT_REOPEN_WINDOW = timedelta(minutes=15)
    fire("a")
    clock.advance(hours=2)
    alerts_resolve_stale()
    first = Incident.objects.get()
    clock.advance(seconds=after.total_seconds())

    fire("a")

    alert = Alert.objects.get()
    assert alert.status == "firing"
    assert (alert.incident_id == first.pk) is reopened


def test_resolved_alert_beside_the_firing_one_that_opens_an_incident_joins_it(
    clock,  # noqa: ANN001
) -> None:
    ingest(
        make_payload(
            make_alert("a", fingerprint="a"),
            make_alert("b", status="resolved", fingerprint="b", ends_at=T0),
        )
    )

    incident = Incident.objects.get()
    assert Alert.objects.get(fingerprint="b").incident == incident
    assert [reason("a"), reason("b")] == ["new_incident", "joined"]


def test_resolved_alert_beside_the_firing_one_that_reopens_an_incident_joins_it(
    clock,  # noqa: ANN001
) -> None:
    fire("a")
    clock.advance(minutes=5)
    resolve("a", ends_at=clock.now)
    clock.advance(minutes=5)

    ingest(
        make_payload(
            make_alert("b", fingerprint="b", starts_at=clock.now),
            make_alert("c", status="resolved", fingerprint="c", ends_at=clock.now),
        )
    )

    assert Incident.objects.get().status == "firing"
    assert [reason("b"), reason("c")] == ["reopened", "joined"]


def test_resolved_alert_joining_a_reopened_incident_raises_its_severity(
    clock,  # noqa: ANN001
) -> None:
    fire("a", severity="warning")
    clock.advance(minutes=5)
    resolve("a", severity="warning", ends_at=clock.now)
    clock.advance(minutes=5)

    ingest(
        make_payload(
            make_alert("b", fingerprint="b", severity="warning", starts_at=clock.now),
            make_alert(
                "c",
                status="resolved",
                fingerprint="c",
                severity="critical",
                ends_at=clock.now,
            ),
        )
    )

    incident = Incident.objects.get()
    assert (incident.status, incident.severity) == ("firing", "critical")


def test_incident_resolved_by_a_person_is_not_reopened(clock) -> None:  # noqa: ANN001
    from incidents.services import incident_resolve

    fire("a")
    incident = Incident.objects.get()
    incident_resolve(incident_id=incident.pk, resolved_by="oncall")
    clock.advance(minutes=1)
    fire("b")
    assert Incident.objects.count() == 2


def test_stale_alert_seen_again_leaves_an_incident_a_person_resolved_alone(
    clock,  # noqa: ANN001
    settings,  # noqa: ANN001
) -> None:
    from incidents.services import incident_resolve

    settings.ALERT_STALE_AFTER = timedelta(minutes=2)
    settings.INCIDENT_REOPEN_WINDOW = timedelta(minutes=15)
    ingest(
        make_payload(make_alert("a", fingerprint="a"), make_alert("b", fingerprint="b"))
    )
    clock.advance(seconds=90)
    fire("b")
    clock.advance(seconds=60)
    assert alerts_resolve_stale() == 1  # a only: b was seen 60 seconds ago
    incident = Incident.objects.get()
    assert incident.status == "firing"
    incident_resolve(incident_id=incident.pk, resolved_by="oncall")
    clock.advance(minutes=3)

    fire("a")

    incident.refresh_from_db()
    assert (incident.status, incident.resolved_by) == ("resolved", "oncall")
    alert = Alert.objects.get(fingerprint="a")
    assert alert.status == "firing" and alert.incident_id != incident.pk
    assert reason("a") == "new_incident"


def test_of_two_reopenable_incidents_the_last_resolved_is_reopened(
    clock,  # noqa: ANN001
    settings,  # noqa: ANN001
) -> None:
    settings.INCIDENT_MAX_AGE = timedelta(minutes=30)
    settings.INCIDENT_REOPEN_WINDOW = timedelta(minutes=15)
    fire("a")
    clock.advance(minutes=31)
    fire("b")  # the first incident is too old to join
    clock.advance(minutes=1)
    resolve("a", ends_at=clock.now)
    clock.advance(minutes=1)
    resolve("b", ends_at=clock.now)
    assert list(Incident.objects.values_list("status", flat=True)) == ["resolved"] * 2
    clock.advance(minutes=1)

    fire("c")

    later = Alert.objects.get(fingerprint="b").incident
    assert Alert.objects.get(fingerprint="c").incident == later
    assert reason("c") == "reopened"
    assert Incident.objects.get(status="firing") == later


def test_of_two_open_incidents_of_a_key_the_latest_joined_takes_the_alert(
    clock,  # noqa: ANN001
) -> None:
    from incidents.services import incident_hide, incident_unhide

    fire("a")
    first = Incident.objects.get()
    incident_hide(incident_id=first.pk)
    clock.advance(minutes=1)
    fire("b")  # opens a second incident, the first being hidden
    incident_unhide(incident_id=first.pk)
    clock.advance(minutes=1)

    fire("c")

    second = Alert.objects.get(fingerprint="b").incident
    assert second != first
    assert Alert.objects.get(fingerprint="c").incident == second


def test_a_new_incident_takes_time_and_title_from_its_earliest_alert(clock) -> None:  # noqa: ANN001
    ingest(
        make_payload(
            make_alert("later", fingerprint="later", summary="Later one"),
            make_alert(
                "earlier",
                fingerprint="earlier",
                summary="Earlier one",
                starts_at=T0 - timedelta(minutes=5),
            ),
        )
    )

    incident = Incident.objects.get()
    assert incident.fired_at == T0 - timedelta(minutes=5)
    assert incident.title == "Earlier one"
    assert [reason("earlier"), reason("later")] == ["new_incident", "joined"]


def test_global_mode_puts_every_alert_in_one_incident(clock, settings) -> None:  # noqa: ANN001
    settings.INCIDENT_GROUP_BY = ["global"]
    fire("a", namespace="shop")
    fire("b", namespace="payments", cluster="us")
    incident = Incident.objects.get()
    assert incident.group_key == "global"
    assert [reason("a"), reason("b")] == ["new_incident", "global"]


def test_global_mode_alerts_delivered_with_the_opening_one_joined_the_global_incident(
    clock,  # noqa: ANN001
    settings,  # noqa: ANN001
) -> None:
    settings.INCIDENT_GROUP_BY = ["global"]
    ingest(
        make_payload(
            make_alert("a", fingerprint="a", namespace="shop"),
            make_alert("b", fingerprint="b", namespace="payments"),
            make_alert("c", status="resolved", fingerprint="c", ends_at=T0),
        )
    )

    assert Incident.objects.get().group_key == "global"
    assert [reason(n) for n in "abc"] == ["new_incident", "global", "global"]


def test_alerts_delivered_with_the_opening_one_joined_the_incident_of_their_key(
    clock,  # noqa: ANN001
) -> None:
    ingest(
        make_payload(
            make_alert("a", fingerprint="a"),
            make_alert("b", fingerprint="b"),
            make_alert("c", status="resolved", fingerprint="c", ends_at=T0),
        )
    )

    assert Incident.objects.count() == 1
    assert [reason(n) for n in "abc"] == ["new_incident", "joined", "joined"]


def test_global_mode_keeps_one_open_incident_past_the_window_not_max_age(
    clock,  # noqa: ANN001
    settings,  # noqa: ANN001
) -> None:
    settings.INCIDENT_GROUP_BY = ["global"]
    settings.INCIDENT_MAX_AGE = timedelta(hours=4)
    fire("a")
    clock.advance(hours=3)  # past the 60-minute window
    fire("b", namespace="payments")

    incident = Incident.objects.get()
    assert incident.status == "firing"
    assert [reason("a"), reason("b")] == ["new_incident", "global"]

    clock.advance(hours=2)  # past the 4-hour age
    fire("old-enough")
    assert Incident.objects.filter(status="firing").count() == 2
    assert reason("old-enough") == "new_incident"


def test_severity_rises_as_alerts_join_and_never_falls(clock) -> None:  # noqa: ANN001
    fire("a", severity="info")
    incident = Incident.objects.get()
    assert incident.severity == "info"
    fire("b", severity="critical")
    fire("c", severity="warning")
    incident.refresh_from_db()
    assert incident.severity == "critical"


def test_severity_ranks_critical_over_warning_over_info_over_others(
    clock,  # noqa: ANN001
    settings,  # noqa: ANN001
) -> None:
    settings.INGEST_SEVERITIES = ["critical", "warning", "info", "page"]
    fire("a", severity="page")
    incident = Incident.objects.get()
    ranks = []
    for name, severity in [("b", "info"), ("c", "page"), ("d", "warning")]:
        fire(name, severity=severity)
        fire(f"{name}-again", severity="info")
        incident.refresh_from_db()
        ranks.append(incident.severity)

    assert ranks == ["info", "info", "warning"]


def test_title_falls_back_to_alertname_in_namespace(clock) -> None:  # noqa: ANN001
    fire("a", summary="Disk is full")
    assert Incident.objects.get().title == "Disk is full"
    fire("KubeJobFailed", namespace="batch")
    assert Incident.objects.get(group_key__endswith="batch").title == (
        "KubeJobFailed in batch"
    )


def test_auto_resolve_off_leaves_the_incident_firing(clock, settings) -> None:  # noqa: ANN001
    settings.INCIDENT_AUTO_RESOLVE = False
    fire("a")
    resolve("a", ends_at=T0 + timedelta(minutes=1))
    assert Incident.objects.get().status == "firing"


def test_hidden_incident_takes_no_new_alerts(clock) -> None:  # noqa: ANN001
    from incidents.services import incident_hide

    fire("a")
    incident_hide(incident_id=Incident.objects.get().pk)
    fire("b")
    assert Incident.objects.count() == 2


def test_stale_alerts_resolve_and_a_later_firing_brings_them_back(
    clock, settings
) -> None:  # noqa: ANN001
    settings.ALERT_STALE_AFTER = timedelta(hours=24)
    settings.INCIDENT_REOPEN_WINDOW = timedelta(minutes=15)
    fire("a")
    clock.advance(hours=23)
    assert alerts_resolve_stale() == 0
    clock.advance(hours=2)
    assert alerts_resolve_stale() == 1
    assert alerts_resolve_stale() == 0  # a second run does nothing
    alert = Alert.objects.get()
    assert alert.status == "resolved" and alert.resolved_as_stale
    incident = Incident.objects.get()
    assert incident.status == "resolved" and incident.resolved_by == "alertmanager"

    clock.advance(minutes=5)
    result = ingest(make_payload(make_alert("a", fingerprint="a")))
    assert result.stored == 1
    alert.refresh_from_db()
    assert alert.status == "firing" and not alert.resolved_as_stale
    assert alert.resolved_at is None
    incident.refresh_from_db()
    assert incident.status == "firing"
    assert Alert.objects.count() == 1


def test_replaying_a_delivery_from_before_a_stale_resolve_leaves_it_resolved(
    clock,  # noqa: ANN001
    settings,  # noqa: ANN001
) -> None:
    """Only a later firing delivery brings a stale alert back (SPEC §3.3); a
    replay of one it was already seen in says nothing new."""
    from alerts.services import delivery_replay

    settings.ALERT_STALE_AFTER = timedelta(hours=1)
    first = ingest(make_payload(make_alert("a", fingerprint="a")))
    # A repeat within the minute: its sighting is not written (last_seen_at
    # is kept to the minute), yet it says nothing the first did not.
    clock.advance(seconds=30)
    repeat = ingest(make_payload(make_alert("a", fingerprint="a")))
    clock.advance(hours=2)
    assert alerts_resolve_stale() == 1

    clock.advance(minutes=5)
    for delivery in (first, repeat):
        replayed = delivery_replay(delivery_id=delivery.delivery_id)
        assert (replayed.stored, replayed.duplicates) == (0, 1)

    alert = Alert.objects.get()
    assert alert.status == "resolved" and alert.resolved_as_stale
    assert Incident.objects.get().status == "resolved"


def test_stale_alert_that_alertmanager_then_resolves_stays_resolved(
    clock,  # noqa: ANN001
    settings,  # noqa: ANN001
) -> None:
    """Alertmanager's resolve turns the stale guess into a fact: a late firing
    delivery of that occurrence afterwards (an HA peer's retry, a replay) is
    a duplicate, as for any resolved alert."""
    settings.ALERT_STALE_AFTER = timedelta(hours=1)
    fire("a")
    clock.advance(hours=2)
    assert alerts_resolve_stale() == 1
    clock.advance(minutes=1)
    resolved = ingest(
        make_payload(
            make_alert("a", status="resolved", fingerprint="a", ends_at=clock.now)
        )
    )
    assert (resolved.stored, resolved.duplicates) == (0, 1)

    clock.advance(minutes=1)
    late = ingest(make_payload(make_alert("a", fingerprint="a")))

    assert (late.stored, late.duplicates) == (0, 1)
    alert = Alert.objects.get()
    assert alert.status == "resolved" and not alert.resolved_as_stale
    assert alert.labels["alertname"] == "a"
    incident = Incident.objects.get()
    assert incident.status == "resolved" and incident.resolved_by == "alertmanager"


def test_stale_alert_seen_after_the_reopen_window_opens_a_new_incident(
    clock,  # noqa: ANN001
    settings,  # noqa: ANN001
) -> None:
    settings.ALERT_STALE_AFTER = timedelta(hours=1)
    fire("a")
    clock.advance(hours=2)
    alerts_resolve_stale()
    clock.advance(hours=1)
    fire("a")
    alert = Alert.objects.get()
    assert alert.status == "firing"
    assert Incident.objects.count() == 2
    assert alert.incident.status == "firing"


def test_an_alert_firing_long_but_seen_lately_is_not_stale(clock, settings) -> None:  # noqa: ANN001
    settings.ALERT_STALE_AFTER = timedelta(hours=24)
    fire("a")
    clock.advance(hours=20)
    fire("a")  # Alertmanager re-sends it every repeat_interval
    clock.advance(hours=5)

    assert alerts_resolve_stale() == 0
    assert Alert.objects.get().status == "firing"
    clock.advance(hours=20)
    assert alerts_resolve_stale() == 1


def test_a_new_incident_counts_its_group_window_from_when_it_opened(
    clock,  # noqa: ANN001
    settings,  # noqa: ANN001
) -> None:
    settings.INCIDENT_GROUP_WINDOW = timedelta(minutes=60)
    # Alertmanager reports it late: it fired two hours before it reached us.
    fire("a", starts_at=clock.now - timedelta(hours=2))
    clock.advance(minutes=5)

    fire("b")

    assert Incident.objects.count() == 1
    assert reason("b") == "joined"


def test_stale_sweep_is_off_at_zero(clock, settings) -> None:  # noqa: ANN001
    settings.ALERT_STALE_AFTER = timedelta(0)
    fire("a")
    clock.advance(days=30)
    assert alerts_resolve_stale() == 0


def test_resolve_stale_task_runs_the_sweep(clock, settings) -> None:  # noqa: ANN001
    settings.ALERT_STALE_AFTER = timedelta(hours=1)
    fire("a")
    clock.advance(hours=2)
    resolve_stale_alerts.call()
    resolve_stale_alerts.call()
    assert Alert.objects.get().resolved_as_stale


@pytest.mark.django_db(transaction=True)
def test_stale_sweep_runs_again_after_a_conflict(clock, settings, caplog) -> None:  # noqa: ANN001
    settings.ALERT_STALE_AFTER = timedelta(hours=1)
    fire("a")
    clock.advance(hours=2)
    # The sweep's first update of alerts fails as a deadlock would; the
    # sequence counts calls outside the transaction the failure rolls back.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE SEQUENCE test_sweep_calls;
            CREATE FUNCTION test_sweep_conflict() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                IF nextval('test_sweep_calls') = 1 THEN
                    RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01';
                END IF;
                RETURN NULL;
            END $$;
            CREATE TRIGGER test_sweep_conflict BEFORE UPDATE ON alerts_alert
            FOR EACH STATEMENT EXECUTE FUNCTION test_sweep_conflict();
            """
        )
    try:
        with caplog.at_level("WARNING", logger="kuberca.transactions"):
            resolved = alerts_resolve_stale()
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP TRIGGER test_sweep_conflict ON alerts_alert; "
                "DROP FUNCTION test_sweep_conflict(); DROP SEQUENCE test_sweep_calls"
            )

    assert resolved == 1
    assert Alert.objects.get().resolved_as_stale
    assert Incident.objects.get().status == "resolved"
    assert "work=alerts_resolve_stale attempt=1" in caplog.text
