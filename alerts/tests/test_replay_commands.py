"""Replaying stored deliveries, the ingest and prune commands, the prune task."""

import os
import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from alerts.models import Alert, WebhookDelivery
from alerts.services import DeliveryNotFound, deliveries_prune, delivery_replay
from alerts.tasks import prune_deliveries
from alerts.tests.webhook_helpers import OUTAGE, ingest, make_alert, make_payload
from incidents.models import Incident
from kuberca.testing.commands import run_from_command_line

pytestmark = pytest.mark.django_db


def snapshot() -> tuple:
    alerts = Alert.objects.order_by("pk").values_list(
        "pk", "status", "incident_id", "grouping_reason", "resolved_at"
    )
    incidents = Incident.objects.order_by("pk").values_list(
        "pk", "status", "severity", "resolved_at"
    )
    return list(alerts), list(incidents)


def test_replaying_any_delivery_twice_changes_nothing(clock) -> None:  # noqa: ANN001
    for path in sorted(OUTAGE.glob("*.json")):
        ingest(path.read_bytes())
    before = snapshot()
    for delivery_id in WebhookDelivery.objects.values_list("pk", flat=True):
        first = delivery_replay(delivery_id=delivery_id)
        second = delivery_replay(delivery_id=delivery_id)
        assert first.stored == second.stored == 0
    assert snapshot() == before


def test_replay_of_unknown_delivery_raises() -> None:
    with pytest.raises(DeliveryNotFound):
        delivery_replay(delivery_id=987654)


def test_replay_recovers_a_delivery_that_failed(clock, monkeypatch) -> None:  # noqa: ANN001
    from django.db import OperationalError

    import alerts.services

    real = alerts.services._process

    def broken(*args: object) -> None:
        raise OperationalError("down")

    monkeypatch.setattr(alerts.services, "_process", broken)
    result = ingest(make_payload(make_alert()))
    assert result.http_status == 503 and not Alert.objects.exists()
    monkeypatch.setattr(alerts.services, "_process", real)
    out = StringIO()
    call_command("replay_deliveries", "--id", str(result.delivery_id), stdout=out)
    assert Alert.objects.count() == 1
    assert WebhookDelivery.objects.get().outcome == "processed"


def test_replay_command_fails_when_a_delivery_is_not_processed(clock) -> None:  # noqa: ANN001
    good = ingest(make_payload(make_alert(fingerprint="x1")))
    bad = ingest(b"[]")
    out = StringIO()

    with pytest.raises(CommandError, match="1 of 2 deliveries were not processed"):
        call_command("replay_deliveries", "--since", "2020-01-01T00:00:00Z", stdout=out)

    assert f"delivery {good.delivery_id}: 200" in out.getvalue()
    assert f"delivery {bad.delivery_id}: 400" in out.getvalue()


def test_replay_command_takes_a_time_range(clock) -> None:  # noqa: ANN001
    ingest(make_payload(make_alert(fingerprint="x1")))
    out = StringIO()
    call_command("replay_deliveries", "--since", "2020-01-01T00:00:00Z", stdout=out)
    assert "replayed 1 delivery" in out.getvalue()
    with pytest.raises(CommandError):
        call_command("replay_deliveries", "--since", "yesterday")
    with pytest.raises(CommandError):
        call_command("replay_deliveries")


def test_replay_command_says_when_a_given_id_is_outside_the_window(clock) -> None:  # noqa: ANN001
    result = ingest(make_payload(make_alert(fingerprint="x1")))
    received = WebhookDelivery.objects.get(pk=result.delivery_id).received_at

    with pytest.raises(CommandError) as raised:
        call_command(
            "replay_deliveries",
            "--id",
            str(result.delivery_id),
            "--until",
            "2020-01-01T00:00:00Z",
            stdout=StringIO(),
        )

    assert str(raised.value) == (
        f"delivery {result.delivery_id} was received at {received.isoformat()}, "
        "outside --until 2020-01-01T00:00:00+00:00"
    )
    with pytest.raises(CommandError, match="^no delivery with id 999999$"):
        call_command(
            "replay_deliveries", "--id", "999999", "--since", "2020-01-01T00:00:00Z"
        )


def test_replay_command_rejects_a_range_that_ends_before_it_starts(clock) -> None:  # noqa: ANN001
    ingest(make_payload(make_alert(fingerprint="x1")))

    with pytest.raises(CommandError, match="--since must be before --until"):
        call_command(
            "replay_deliveries",
            "--since",
            "2026-12-05T00:00:00Z",
            "--until",
            "2026-12-01T00:00:00Z",
            stdout=StringIO(),
        )


def test_replay_command_skips_a_delivery_pruned_while_it_runs(
    clock, monkeypatch
) -> None:  # noqa: ANN001
    """prune beside a replay of a range at the edge of retention: the replay
    goes on with the rest and says which went, instead of a traceback."""
    from alerts.management.commands import replay_deliveries

    first = ingest(make_payload(make_alert(fingerprint="x1")))
    second = ingest(make_payload(make_alert(fingerprint="x2")))
    real = replay_deliveries.delivery_replay

    def replay_while_pruning(*, delivery_id: int):  # noqa: ANN202
        WebhookDelivery.objects.filter(pk=second.delivery_id).delete()
        return real(delivery_id=delivery_id)

    monkeypatch.setattr(replay_deliveries, "delivery_replay", replay_while_pruning)
    out = StringIO()

    call_command("replay_deliveries", "--since", "2020-01-01T00:00:00Z", stdout=out)

    assert out.getvalue().splitlines() == [
        f"delivery {first.delivery_id}: 200 stored=0 duplicates=1",
        f"delivery {second.delivery_id}: gone (deleted since the replay began)",
        "replayed 1 delivery, 0 alerts changed; 1 gone",
    ]


@pytest.mark.parametrize("option", ["--since", "--until"])
def test_replay_command_rejects_a_bad_time_in_one_line_not_a_traceback(option):
    code, stderr = run_from_command_line("replay_deliveries", option, "garbage")

    assert code == 2
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1] == (
        f"manage.py replay_deliveries: error: argument {option}:"
        " not an RFC 3339 time with an offset: 'garbage'"
    )


def test_ingest_command_feeds_files_through_the_webhook_path() -> None:
    files = [str(p) for p in sorted(OUTAGE.glob("*.json"))]
    out = StringIO()
    call_command("ingest_alertmanager", *files, stdout=out)
    assert out.getvalue().count(": 200 ") == 7
    assert Alert.objects.count() == 8
    assert WebhookDelivery.objects.count() == 7


def test_ingest_command_fails_for_a_bad_file(tmp_path) -> None:  # noqa: ANN001
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    with pytest.raises(CommandError):
        call_command("ingest_alertmanager", str(bad), stdout=StringIO())


def test_ingest_command_answers_413_for_a_file_over_the_limit(tmp_path, settings):  # noqa: ANN001
    settings.WEBHOOK_MAX_BYTES = 1000
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 100_000)

    with pytest.raises(CommandError, match="1 file"):
        call_command("ingest_alertmanager", str(big), stdout=StringIO())

    delivery = WebhookDelivery.objects.get()
    assert (delivery.http_status, delivery.body_size) == (413, 100_000)
    assert delivery.body_truncated


def test_ingest_command_stops_reading_a_body_past_the_limit(tmp_path, settings):  # noqa: ANN001
    # A pipe, or /dev/zero, or a file of many gigabytes: what is past the
    # limit is never read, let alone held in memory.
    settings.WEBHOOK_MAX_BYTES = 1000
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    written = []

    def feed() -> None:
        chunk = b" " * 65536
        try:
            with pipe.open("wb") as sink:
                for _ in range(1000):  # 64 MiB unless the reader stops
                    sink.write(chunk)
                    written.append(len(chunk))
        except BrokenPipeError:
            pass

    writer = threading.Thread(target=feed)
    writer.start()
    with pytest.raises(CommandError, match="1 file"):
        call_command("ingest_alertmanager", str(pipe), stdout=StringIO())
    writer.join(timeout=30)

    assert WebhookDelivery.objects.get().http_status == 413
    assert sum(written) < 1024 * 1024


def test_prune_deletes_old_deliveries_in_bounded_batches(clock, settings) -> None:  # noqa: ANN001
    # The periodic job beside live traffic: a backlog (a retention just
    # shortened, a worker down for days) is many short DELETEs, not one.
    settings.WEBHOOK_RETENTION_DAYS = 14
    for n in range(5):
        ingest(make_payload(make_alert(fingerprint=f"old-{n}")))
    clock.advance(days=15)
    deletes = []

    def count_deletes(execute, sql, params, many, context):  # noqa: ANN001, ANN202
        if sql.startswith('DELETE FROM "alerts_webhookdelivery"'):
            deletes.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count_deletes):
        assert deliveries_prune(batch_size=2) == 5

    assert len(deletes) == 3
    assert not WebhookDelivery.objects.exists()


def test_prune_drops_only_old_deliveries(clock, settings) -> None:  # noqa: ANN001
    settings.WEBHOOK_RETENTION_DAYS = 14
    ingest(make_payload(make_alert(fingerprint="old")))
    clock.advance(days=15)
    ingest(make_payload(make_alert(fingerprint="new")))
    assert prune_deliveries.call() == 1
    assert prune_deliveries.call() == 0
    assert WebhookDelivery.objects.count() == 1
    assert Alert.objects.count() == 2  # alerts are kept
    clock.advance(days=15)
    out = StringIO()
    call_command("prune_deliveries", stdout=out)
    assert "deleted 1" in out.getvalue()
    assert timedelta(days=14)
