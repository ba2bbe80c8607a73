"""The webhook's database use: prepared statements, index plans, a dead connection."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from alerts.models import Alert, WebhookDelivery
from alerts.services import _CANDIDATES_IF_NEW, _SELECT_KNOWN
from alerts.tests.webhook_helpers import T0, ingest, make_alert, make_payload
from kuberca import prepared

pytestmark = pytest.mark.django_db


@pytest.fixture
def fresh_session():  # noqa: ANN201
    """No kuberca statement prepared on this session yet, nor afterwards."""

    def reset() -> None:
        with connection.cursor() as cursor:
            cursor.execute("DEALLOCATE ALL")
            cursor.execute("RESET plan_cache_mode")
        prepared._prepared_on.discard(connection.connection)
        prepared._given_up = False

    connection.ensure_connection()
    reset()
    yield
    reset()


def _session_statements() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        return {name for (name,) in cursor.fetchall()}


def _sent(payload: dict) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        assert ingest(payload).http_status == 200
    return [q["sql"] for q in queries.captured_queries]


def test_statements_are_prepared_once_per_connection(fresh_session) -> None:  # noqa: ANN001
    first = _sent(make_payload(make_alert(fingerprint="a1")))
    assert "kuberca_select_known" in _session_statements()
    assert sum("PREPARE kuberca_" in sql for sql in first) == 1
    second = _sent(make_payload(make_alert(fingerprint="a2")))
    assert not any("PREPARE" in sql for sql in second)
    assert any("EXECUTE kuberca_upsert_alerts" in sql for sql in second)
    assert Alert.objects.count() == 2


def test_plain_sql_when_prepared_statements_are_off(fresh_session, settings) -> None:  # noqa: ANN001
    settings.DATABASE_PREPARED_STATEMENTS = False
    sent = _sent(
        make_payload(make_alert(fingerprint="b1"), make_alert(fingerprint="b2"))
    )
    assert not any("PREPARE" in sql or "EXECUTE" in sql for sql in sent)
    assert not _session_statements() & {"kuberca_select_known"}
    assert Alert.objects.filter(fingerprint__in=["b1", "b2"]).count() == 2
    assert WebhookDelivery.objects.get().outcome == "processed"


def _store_alerts(
    cursor,  # noqa: ANN001
    count: int,
    *,
    fingerprint: str,
    fired_at: str,
    status: str = "resolved",
    prefix: str = "",
) -> None:
    """`count` alerts, numbered n, written straight to the table;
    `fingerprint` and `fired_at` are SQL of n (`%s` is T0); ids start
    with `prefix` and the status."""
    cursor.execute(
        f"""
        INSERT INTO alerts_alert (alert_id, fingerprint, alarm_title, severity,
            status, fired_at, labels, annotations, generator_url, group_key,
            analysis_summary, analysis_detail, thread_ts, grouping_reason,
            is_enabled, resolved_as_stale, last_seen_at, created_at, updated_at)
        SELECT '{prefix}{status}' || n, {fingerprint}, 'Bulk', 'warning', '{status}',
            {fired_at}, '{{}}', '{{}}', '', '', '', '', '', 'new', true, false,
            %s, %s, %s
        FROM generate_series(1, {count}) AS n
        """,  # noqa: S608
        [T0, T0, T0, T0],
    )


def test_plans_made_on_a_small_table_use_the_index_when_it_grows(
    fresh_session,  # noqa: ANN001
) -> None:
    with connection.cursor() as cursor:
        # The generic plan is made at the first execution, on a near-empty table.
        cursor.execute("SET plan_cache_mode = force_generic_plan")
    ingest(make_payload(make_alert(fingerprint="c0")))
    with connection.cursor() as cursor:
        _store_alerts(cursor, 20000, fingerprint="'bulk' || n", fired_at="%s")
        # With a timeless resolve too, whose latest occurrence is looked up.
        occurrence = '[{"fp": "c0", "ts": "2026-12-03T16:00:00Z"}]'
        cursor.execute(
            "EXPLAIN " + _SELECT_KNOWN.execute_sql, [occurrence, ["c0"], occurrence]
        )
        plan = "\n".join(row for (row,) in cursor.fetchall())
    assert "Seq Scan on alerts_alert" not in plan, plan
    assert "alerts_alert" in plan


def test_a_fingerprint_with_many_occurrences_is_matched_without_reading_them(
    fresh_session,  # noqa: ANN001
) -> None:
    """A flapping alert has a stored row per occurrence, and thousands of
    other alerts fire: the lookups of a delivery read the rows that match,
    not every row of the fingerprint nor every firing row, also with the
    plan made while the table was small (statistics lag behind)."""
    with connection.cursor() as cursor:
        cursor.execute("SET plan_cache_mode = force_generic_plan")
    ingest(make_payload(make_alert(fingerprint="flap")))
    with connection.cursor() as cursor:
        _store_alerts(
            cursor, 5000, fingerprint="'flap'", fired_at="%s - n * interval '5m'"
        )
        _store_alerts(
            cursor, 2000, fingerprint="'other' || n", fired_at="%s", status="firing"
        )
        repeat = '[{"fp": "flap", "ts": "2026-12-03T12:00:00Z"}]'
        timeless = '[{"fp": "flap", "ts": "2026-12-03T16:00:00Z", "latest": true}]'
        plans = []
        for statement, params in [
            (_SELECT_KNOWN, [repeat, ["flap"], timeless]),
            (_CANDIDATES_IF_NEW, [["k"], "auto", T0, timeless]),
        ]:
            cursor.execute(
                "EXPLAIN (ANALYZE, FORMAT TEXT) " + statement.execute_sql, params
            )
            plans.append("\n".join(row for (row,) in cursor.fetchall()))
    read = [
        float(n)
        for plan in plans
        for n in re.findall(
            r"(?:actual time=\S+ rows|Removed by \w+ ?\w*:)=?\s?([\d.]+)", plan
        )
    ]
    assert read, plans
    assert max(read) < 10, plans


def _rows_read(plan: str) -> float:
    return max(
        float(n)
        for n in re.findall(
            r"(?:actual time=\S+ rows|Removed by \w+ ?\w*:)=?\s?([\d.]+)", plan
        )
    )


@pytest.mark.parametrize(
    ("fingerprint", "fired_at"),
    [
        pytest.param("'t' || mod(n, 3)", "%s - n * interval '1m'", id="few"),
        pytest.param("'s' || n", "%s", id="one-time"),
    ],
)
def test_plans_made_on_analyzed_small_table_probe_by_fingerprint(
    fresh_session,  # noqa: ANN001
    fingerprint: str,
    fired_at: str,
) -> None:
    """Statistics taken early (autovacuum analyzes a small table soon) show
    a few fingerprints (or one time) and no firing alert: the plans made on them still
    find a fingerprint's firing row and its latest occurrence by the
    fingerprint, not by reading every firing alert or every alert fired
    before the time of receipt."""
    with connection.cursor() as cursor:
        _store_alerts(cursor, 300, fingerprint=fingerprint, fired_at=fired_at)
        cursor.execute("ANALYZE alerts_alert")
        cursor.execute("SET plan_cache_mode = force_generic_plan")
    ingest(make_payload(make_alert(fingerprint="c0")))
    with connection.cursor() as cursor:
        _store_alerts(
            cursor,
            20000,
            fingerprint="'flap'",
            fired_at="%s - n * interval '1m'",
            prefix="flap",
        )
        _store_alerts(
            cursor,
            3000,
            fingerprint="'other' || n",
            fired_at="%s - n * interval '1s'",
            status="firing",
        )
        repeat = '[{"fp": "flap", "ts": "2026-12-03T15:59:00Z"}]'
        timeless = '[{"fp": "new", "ts": "2026-12-04T16:00:00Z", "latest": true}]'
        plans = []
        for statement, params in [
            (_SELECT_KNOWN, [repeat, ["flap"], timeless]),
            (_SELECT_KNOWN, [timeless, ["new"], timeless]),
            (_CANDIDATES_IF_NEW, [["k"], "auto", T0, timeless]),
        ]:
            cursor.execute(
                "EXPLAIN (ANALYZE, FORMAT TEXT) " + statement.execute_sql, params
            )
            plans.append("\n".join(row for (row,) in cursor.fetchall()))
    assert max(_rows_read(plan) for plan in plans) < 10, plans


@pytest.mark.django_db(transaction=True)
def test_lost_statements_fall_back_to_plain_sql(fresh_session, caplog) -> None:  # noqa: ANN001
    ingest(make_payload(make_alert(fingerprint="d1")))
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # as a pooler's other session would be
    result = ingest(make_payload(make_alert(fingerprint="d2")))
    assert result.http_status == 200
    assert "DATABASE_PREPARED_STATEMENTS=false" in caplog.text
    later = _sent(make_payload(make_alert(fingerprint="d3")))
    assert not any("EXECUTE" in sql for sql in later)
    assert set(Alert.objects.values_list("fingerprint", flat=True)) == {
        "d1",
        "d2",
        "d3",
    }
    assert set(WebhookDelivery.objects.values_list("outcome", flat=True)) == {
        "processed"
    }
    assert WebhookDelivery.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_statements_lost_inside_a_transaction_are_retried(
    fresh_session,  # noqa: ANN001
    monkeypatch,  # noqa: ANN001
) -> None:
    """The ledger insert goes through; the processing transaction meets the loss."""
    from alerts import services

    ingest(make_payload(make_alert(fingerprint="g1")))
    store = services._store_delivery

    def store_then_lose(**kwargs):  # noqa: ANN003, ANN202
        delivery = store(**kwargs)
        with connection.cursor() as cursor:
            cursor.execute("DEALLOCATE kuberca_lock_keys")
        return delivery

    monkeypatch.setattr(services, "_store_delivery", store_then_lose)
    result = ingest(make_payload(make_alert(fingerprint="g2")))
    assert result.http_status == 200
    assert result.stored == 1
    assert Alert.objects.filter(fingerprint="g2").count() == 1
    assert WebhookDelivery.objects.filter(outcome="processed").count() == 2


@pytest.mark.django_db(transaction=True)
def test_session_settings_do_not_outlive_a_delivery(fresh_session) -> None:  # noqa: ANN001
    ingest(make_payload(make_alert(fingerprint="e1")))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('enable_seqscan'), "
            "current_setting('synchronous_commit')"
        )
        assert cursor.fetchone() == ("on", "on")


@pytest.mark.django_db(transaction=True)
def test_delivery_on_a_connection_the_server_closed_reconnects(
    client,  # noqa: ANN001
) -> None:
    import psycopg
    from django.db import close_old_connections

    connection.ensure_connection()
    backend = connection.connection.info.backend_pid
    params = connection.get_connection_params()
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [backend])
    close_old_connections()  # what Django does as each request starts

    response = client.post(
        "/webhook/alertmanager",
        make_payload(make_alert(fingerprint="f1")),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert connection.connection.info.backend_pid != backend
    assert WebhookDelivery.objects.get().outcome == "processed"
    assert Alert.objects.get().fingerprint == "f1"
