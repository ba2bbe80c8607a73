"""A person moves alerts and merges incidents (alert_move, incident_merge)."""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from django.db import connection, transaction

from alerts import events
from alerts.agent import parse_analyze_response
from alerts.analysis import analysis_store_result
from alerts.models import Alert, AlertAnalysis
from alerts.services import (
    AlertNotFound,
    alert_move,
    alerts_resolve_stale,
    incident_merge,
)
from alerts.tests.fake_agent import canned_analysis
from alerts.tests.webhook_helpers import T0, ingest, make_alert, make_payload
from incidents.models import AUTO_RESOLVER, Incident
from incidents.services import IncidentNotFound, incident_resolve
from kuberca.errors import InvalidInput
from kuberca.testing.concurrency import wait_for_lock_wait

pytestmark = pytest.mark.django_db


def fire(name: str, **kwargs: object) -> Alert:
    ingest(make_payload(make_alert(name, fingerprint=name, **kwargs)))
    return Alert.objects.get(fingerprint=name)


def resolve(name: str, namespace: str, at: object) -> None:
    ingest(
        make_payload(
            make_alert(
                name,
                fingerprint=name,
                namespace=namespace,
                status="resolved",
                ends_at=at,
            )
        )
    )


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
        assert other.resolved_by == "oncall"


def test_merge_of_an_auto_resolved_incident_keeps_later_alerts_out_of_it(clock) -> None:  # noqa: ANN001
    a = fire("a", namespace="shop", starts_at=T0.replace(hour=15))
    b = fire("b", namespace="payments")
    clock.advance(minutes=1)
    # b's last alert resolves just before the person's merge gets to it.
    resolve("b", "payments", clock.now)
    assert Incident.objects.get(pk=b.incident_id).resolved_by == AUTO_RESOLVER

    target = incident_merge(
        incident_ids=[a.incident_id, b.incident_id], merged_by="oncall"
    )
    assert target.pk == a.incident_id
    merged = Incident.objects.get(pk=b.incident_id)
    assert (merged.status, merged.resolved_by) == ("resolved", "oncall")

    # Within the reopen window, a new alert of b's key does not bring the
    # merged, empty incident back to life.
    clock.advance(minutes=1)
    c = fire("c", namespace="payments")
    assert c.incident_id != b.incident_id
    merged.refresh_from_db()
    assert merged.status == "resolved" and not merged.alerts.exists()


def test_merge_of_an_incident_auto_resolved_long_ago_keeps_who_resolved_it(
    clock,  # noqa: ANN001
    settings,  # noqa: ANN001
) -> None:
    a = fire("a", namespace="shop", starts_at=T0.replace(hour=15))
    b = fire("b", namespace="payments")
    resolve("b", "payments", clock.now)
    clock.advance(minutes=1)
    clock.advance(seconds=settings.INCIDENT_REOPEN_WINDOW.total_seconds())

    incident_merge(incident_ids=[a.incident_id, b.incident_id], merged_by="oncall")

    merged = Incident.objects.get(pk=b.incident_id)
    assert (merged.status, merged.resolved_by) == ("resolved", AUTO_RESOLVER)


def test_merge_needs_two_known_incidents(clock) -> None:  # noqa: ANN001
    a = fire("a")
    with pytest.raises(InvalidInput):
        incident_merge(incident_ids=[a.incident_id], merged_by="x")
    with pytest.raises(InvalidInput):
        incident_merge(incident_ids=[a.incident_id, a.incident_id], merged_by="x")
    with pytest.raises(IncidentNotFound):
        incident_merge(incident_ids=[a.incident_id, "INC-00000000"], merged_by="x")


def test_moving_the_last_firing_alert_away_resolves_the_incident_left(clock) -> None:  # noqa: ANN001
    a = fire("a", namespace="shop")
    b = fire("b", namespace="payments")
    c = fire("c", namespace="search")
    d = fire("d", namespace="search")
    clock.advance(minutes=2)
    resolve("d", "search", clock.now)

    alert_move(alert_id=b.pk, incident_id=a.incident_id, moved_by="oncall")
    alert_move(alert_id=c.pk, incident_id=a.incident_id, moved_by="oncall")

    emptied = Incident.objects.get(pk=b.incident_id)
    assert (emptied.status, emptied.resolved_by) == ("resolved", AUTO_RESOLVER)
    only_resolved_left = Incident.objects.get(pk=c.incident_id)
    assert only_resolved_left.status == "resolved"
    assert only_resolved_left.resolved_at == Alert.objects.get(pk=d.pk).resolved_at
    assert Incident.objects.get(pk=a.incident_id).status == "firing"


def test_moving_a_firing_alert_into_a_resolved_incident_fires_it_again(clock) -> None:  # noqa: ANN001
    a = fire("a", namespace="shop")
    b = fire("b", namespace="payments")
    c = fire("c", namespace="payments")
    incident_resolve(incident_id=a.incident_id, resolved_by="oncall")

    alert_move(alert_id=b.pk, incident_id=a.incident_id, moved_by="oncall")

    assert Incident.objects.get(pk=a.incident_id).status == "firing"
    # The incident it left still has a firing alert.
    assert Incident.objects.get(pk=c.incident_id).status == "firing"


def test_an_incident_a_move_fires_again_takes_alerts_of_its_key_again(clock) -> None:  # noqa: ANN001
    a = fire("a", namespace="shop")
    clock.advance(hours=2)
    b = fire("b", namespace="payments")
    incident_resolve(incident_id=a.incident_id, resolved_by="oncall")
    alert_move(alert_id=b.pk, incident_id=a.incident_id, moved_by="oncall")
    clock.advance(minutes=5)

    c = fire("c", namespace="shop")

    assert c.incident_id == a.incident_id
    assert c.grouping_reason == "joined"


def _wait_for_lock_wait(params: dict, pattern: str) -> None:
    if not wait_for_lock_wait(params, pattern):
        pytest.fail(f"no statement like {pattern} ever waited for a lock")


@contextmanager
def _blocked(
    hold: tuple[str, list], work: Callable[[], Any], waits_on: str
) -> Iterator[tuple[psycopg.Connection, dict]]:
    """Another session holds `hold` while `work` runs in a thread, until the
    work waits for a lock in a statement like `waits_on`.

    Yields (that session, the work's outcome); on leaving, the session rolls
    back and the work is let finish: `outcome` then holds "value" or "error".
    """
    params = connection.get_connection_params()
    side = psycopg.connect(**params)
    side.execute(*hold)
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except Exception as error:  # noqa: BLE001 - the test reports it
            outcome["error"] = error
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        _wait_for_lock_wait(params, waits_on)
        yield side, outcome
    finally:
        side.rollback()
        side.close()
        thread.join(timeout=30)


@pytest.mark.django_db(transaction=True)
def test_a_merge_that_deadlocks_with_another_writer_runs_again(caplog) -> None:  # noqa: ANN001
    a = fire("a", namespace="shop")
    b = fire("b", namespace="payments", starts_at=T0.replace(hour=15))

    # Another writer holds alert a, then wants the incident a is leaving.
    with _blocked(
        ("SELECT 1 FROM alerts_alert WHERE alert_id = %s FOR UPDATE", [a.pk]),
        lambda: incident_merge(
            incident_ids=[a.incident_id, b.incident_id], merged_by="oncall"
        ),
        waits_on="%alerts_alert%FOR UPDATE%",
    ) as (side, outcome):
        # The merge waited first, so PostgreSQL aborts it for the deadlock.
        side.execute(
            "SELECT 1 FROM incidents_incident WHERE incident_id = %s FOR UPDATE",
            [a.incident_id],
        )

    assert "error" not in outcome, outcome.get("error")
    assert outcome["value"].pk == b.incident_id
    assert Alert.objects.get(pk=a.pk).incident_id == b.incident_id
    assert "transaction conflicted, running it again work=incident_merge" in caplog.text


def _move_a_to_b(a: Alert, b: Alert) -> Callable[[], Alert]:
    return lambda: alert_move(alert_id=a.pk, incident_id=b.incident_id, moved_by="x")


@pytest.mark.django_db(transaction=True)
def test_a_move_locks_the_incidents_before_the_alert() -> None:
    a = fire("a", namespace="shop")
    b = fire("b", namespace="payments")

    with _blocked(
        (
            "SELECT 1 FROM incidents_incident WHERE incident_id = %s FOR UPDATE",
            [a.incident_id],
        ),
        _move_a_to_b(a, b),
        waits_on='SELECT "incidents_incident".%',
    ) as (_side, outcome):
        # A merge holding the incident can still lock the alert: no deadlock.
        with psycopg.connect(**connection.get_connection_params()) as merge:
            merge.execute(
                "SELECT 1 FROM alerts_alert WHERE alert_id = %s FOR UPDATE NOWAIT",
                [a.pk],
            )
            merge.rollback()

    assert "error" not in outcome, outcome.get("error")
    assert Alert.objects.get(pk=a.pk).incident_id == b.incident_id


@pytest.mark.django_db(transaction=True)
def test_a_move_waits_for_a_delivery_of_its_alert_before_locking_incidents() -> None:
    from alerts.services import _lock_hashes

    a = fire("a", namespace="shop")
    b = fire("b", namespace="payments")

    # What a delivery carrying alert a holds from its first statement.
    with _blocked(
        (
            "SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k",
            [_lock_hashes(fingerprints=[a.fingerprint])],
        ),
        _move_a_to_b(a, b),
        waits_on="%pg_advisory_xact_lock%",
    ) as (delivery, outcome):
        # The delivery may still lock the incidents: the move holds none yet.
        delivery.execute(
            "SELECT 1 FROM incidents_incident WHERE incident_id = ANY(%s) "
            "FOR UPDATE NOWAIT",
            [[a.incident_id, b.incident_id]],
        )

    assert "error" not in outcome, outcome.get("error")
    assert Alert.objects.get(pk=a.pk).incident_id == b.incident_id


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("auto_resolve", [True, False])
def test_the_stale_sweep_locks_an_incident_before_its_slack_root(
    settings,  # noqa: ANN001
    auto_resolve: bool,
) -> None:
    settings.SLACK_ENABLED, settings.SLACK_CHANNEL_ID = True, "C0"
    settings.ALERT_STALE_AFTER = timedelta(hours=1)
    settings.INCIDENT_AUTO_RESOLVE = auto_resolve
    a = fire("a", namespace="shop")
    Alert.objects.filter(pk=a.pk).update(last_seen_at=T0 - timedelta(days=1))

    # A person's resolve locks the incident, then marks its Slack root for
    # an edit; the sweep must take the two in that order too.
    with _blocked(
        (
            "SELECT 1 FROM incidents_incident WHERE incident_id = %s FOR NO KEY UPDATE",
            [a.incident_id],
        ),
        alerts_resolve_stale,
        # Prepared (`EXECUTE lock_incidents`) or not (`FROM incidents_incident`).
        waits_on="%incidents%",
    ) as (resolve, outcome):
        edit = resolve.execute(
            "UPDATE notifications_slackmessage SET revision = revision + 1 "
            "WHERE incident_id = %s AND kind = 'incident_root'",
            [a.incident_id],
        )
        assert edit.rowcount == 1

    assert "error" not in outcome, outcome.get("error")
    assert outcome["value"] == 1
    assert Alert.objects.get(pk=a.pk).status == "resolved"
    incident = Incident.objects.get(pk=a.incident_id)
    assert incident.status == ("resolved" if auto_resolve else "firing")


# What a merge or a move does to an alert's incident and then to the alert.
_LOCK_INCIDENT = "SELECT 1 FROM incidents_incident WHERE incident_id = %s FOR UPDATE"
_LOCK_ALERT = "SELECT 1 FROM alerts_alert WHERE alert_id = %s FOR UPDATE"


@pytest.mark.django_db(transaction=True)
def test_an_analysis_requested_while_a_merge_takes_its_alert_is_accepted(
    auth_client,  # noqa: ANN001
) -> None:
    a = fire("a", namespace="shop")

    # The request locks the alert, and its new analysis row names the
    # incident, which PostgreSQL checks at commit: it waits for the merge
    # holding the incident, and the merge then waits for the alert.
    with _blocked(
        (_LOCK_INCIDENT, [a.incident_id]),
        lambda: auth_client.post(f"/api/v1/alerts/{a.pk}/analyze"),
        waits_on="COMMIT",
    ) as (merge, outcome):
        merge.execute(_LOCK_ALERT, [a.pk])

    assert "error" not in outcome, outcome.get("error")
    assert outcome["value"].status_code == 202, outcome["value"].json()
    assert AlertAnalysis.objects.filter(alert=a, trigger="manual").count() == 1


@pytest.mark.django_db(transaction=True)
def test_an_agent_answer_stored_while_a_merge_takes_its_alert_is_kept(
    settings,  # noqa: ANN001
) -> None:
    settings.SLACK_ENABLED, settings.SLACK_CHANNEL_ID = True, "C0"
    a = fire("a", namespace="shop")
    analysis = AlertAnalysis.objects.get(alert=a)
    AlertAnalysis.objects.filter(pk=analysis.pk).update(state="running", attempts=1)
    response = parse_analyze_response(
        canned_analysis(
            {"alert": {"fingerprint": "a"}, "analysis_type": "firing", "thread_ts": ""}
        )
    )

    # The store updates the alert, and its Slack reply names the incident,
    # checked at commit: as above, a merge holding the incident meets it.
    with _blocked(
        (_LOCK_INCIDENT, [a.incident_id]),
        lambda: analysis_store_result(
            analysis_id=analysis.pk, attempt=1, response=response
        ),
        waits_on="COMMIT",
    ) as (merge, outcome):
        merge.execute(_LOCK_ALERT, [a.pk])

    assert "error" not in outcome, outcome.get("error")
    assert outcome["value"] is True
    assert AlertAnalysis.objects.get(pk=analysis.pk).state == "done"


@pytest.mark.django_db(transaction=True)
def test_a_resolve_waiting_behind_a_move_lets_a_row_naming_the_incident_commit(
    auth_client,  # noqa: ANN001
    settings,  # noqa: ANN001
) -> None:
    from notifications.models import SlackMessage

    settings.SLACK_ENABLED, settings.SLACK_CHANNEL_ID = True, "C0"
    a = fire("a", namespace="shop")
    fire("c", namespace="shop")  # keeps a's incident firing once a leaves
    b = fire("b", namespace="payments")
    params = connection.get_connection_params()
    outcomes: dict = {}
    holding, commit = threading.Event(), threading.Event()

    def store_analysis() -> None:
        # What storing an Agent answer does: update the alert, add a Slack
        # reply naming its incident (a foreign key checked at commit).
        with transaction.atomic():
            Alert.objects.filter(pk=a.pk).update(analysis_summary="OOM")
            SlackMessage.objects.create(
                incident_id=a.incident_id, kind="analysis", channel="C0"
            )
            holding.set()
            commit.wait(timeout=30)

    def run(name: str, work: Callable[[], Any]) -> threading.Thread:
        def target() -> None:
            try:
                outcomes[name] = work()
            except Exception as error:  # noqa: BLE001 - the test reports it
                outcomes[name] = error
            finally:
                connection.close()

        thread = threading.Thread(target=target)
        thread.start()
        return thread

    threads = [run("store", store_analysis)]
    assert holding.wait(timeout=30)
    # A move locks the incidents, then waits for the alert the store holds...
    threads.append(run("move", _move_a_to_b(a, b)))
    _wait_for_lock_wait(params, 'SELECT "alerts_alert".%')
    with psycopg.connect(**params, autocommit=True) as watch:
        (timeout_ms,) = watch.execute(
            "SELECT setting::int FROM pg_settings WHERE name = 'deadlock_timeout'"
        ).fetchone()
    time.sleep(timeout_ms / 1000 + 0.3)
    # ...and a person's resolve of that incident waits for the move.
    url = f"/api/v1/incidents/{a.incident_id}/resolve"
    threads.append(run("resolve", lambda: auth_client.post(url, {}, format="json")))
    _wait_for_lock_wait(params, 'SELECT "incidents_incident".%')
    # The store commits: its reply's foreign key check must not wait for them.
    commit.set()
    for thread in threads:
        thread.join(timeout=30)

    assert outcomes["resolve"].status_code == 200, outcomes["resolve"].json()
    assert outcomes["store"] is None, outcomes["store"]
    assert isinstance(outcomes["move"], Alert), outcomes["move"]
    assert Incident.objects.get(pk=a.incident_id).status == "resolved"
