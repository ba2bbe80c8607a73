from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from alerts.models import Alert, AlertAnalysis, WebhookDelivery
from incidents.models import Incident
from kuberca.tasks import reap_lost_tasks
from kuberca.testing.commands import run_from_command_line

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def delivery(age: timedelta) -> WebhookDelivery:
    row = WebhookDelivery.objects.create(body=b"{}")
    WebhookDelivery.objects.filter(pk=row.pk).update(received_at=timezone.now() - age)
    return row


def task_result(status: str, age: timedelta | None) -> DBTaskResult:
    result = reap_lost_tasks.enqueue()
    finished = timezone.now() - age if age is not None else None
    DBTaskResult.objects.filter(pk=result.id).update(
        status=status, finished_at=finished
    )
    return DBTaskResult.objects.get(pk=result.id)


def incident(*, resolved_ago: timedelta | None, alert_statuses=("resolved",)):
    now = timezone.now()
    row = Incident.objects.create(
        fired_at=now - (resolved_ago or DAY) - DAY,
        status="resolved" if resolved_ago is not None else "firing",
        resolved_at=now - resolved_ago if resolved_ago is not None else None,
    )
    for n, status in enumerate(alert_statuses):
        Alert.objects.create(
            incident=row,
            fingerprint=f"{row.pk}-{n}",
            status=status,
            fired_at=row.fired_at,
            last_seen_at=row.fired_at,
        )
    return row


def prune(*args: str) -> str:
    out = StringIO()
    call_command("prune", *args, stdout=out)
    return out.getvalue()


def test_prune_removes_deliveries_past_retention_only(settings):
    settings.WEBHOOK_RETENTION_DAYS = 14
    old = delivery(15 * DAY)
    recent = delivery(13 * DAY)

    output = prune()

    assert "deliveries=1" in output
    assert not WebhookDelivery.objects.filter(pk=old.pk).exists()
    assert WebhookDelivery.objects.filter(pk=recent.pk).exists()


def test_prune_deliveries_days_option_overrides_setting():
    delivery(3 * DAY)
    kept = delivery(1 * DAY)

    prune("--deliveries-days", "2")

    assert list(WebhookDelivery.objects.values_list("pk", flat=True)) == [kept.pk]


def test_prune_removes_finished_task_results_older_than_tasks_days():
    old_ok = task_result("SUCCESSFUL", 8 * DAY)
    old_failed = task_result("FAILED", 10 * DAY)
    recent = task_result("SUCCESSFUL", 6 * DAY)

    output = prune()  # --tasks-days defaults to 7

    assert "task_results=2" in output
    remaining = set(DBTaskResult.objects.values_list("pk", flat=True))
    assert recent.pk in remaining
    assert old_ok.pk not in remaining
    assert old_failed.pk not in remaining


def test_prune_never_touches_ready_or_running_tasks():
    ready = task_result("READY", None)
    running = task_result("RUNNING", None)
    # A running task with a stale finished_at (never set in practice) stays too.
    stale_running = task_result("RUNNING", 30 * DAY)

    prune("--tasks-days", "1")

    remaining = set(DBTaskResult.objects.values_list("pk", flat=True))
    assert {ready.pk, running.pk, stale_running.pk} <= remaining


def test_prune_keeps_incidents_unless_asked():
    old = incident(resolved_ago=400 * DAY)

    output = prune()

    assert "incidents=0" in output
    assert Incident.objects.filter(pk=old.pk).exists()


def test_prune_incidents_days_removes_old_resolved_incidents_and_their_alerts():
    old = incident(resolved_ago=40 * DAY, alert_statuses=("resolved", "resolved"))
    AlertAnalysis.objects.create(alert=old.alerts.first(), status="firing")
    recent = incident(resolved_ago=10 * DAY)
    firing = incident(resolved_ago=None, alert_statuses=("firing",))

    output = prune("--incidents-days", "30")

    assert "incidents=1 alerts=2" in output
    assert not Incident.objects.filter(pk=old.pk).exists()
    assert not Alert.objects.filter(fingerprint__startswith=old.pk).exists()
    assert not AlertAnalysis.objects.exists()
    assert Incident.objects.filter(pk__in=[recent.pk, firing.pk]).count() == 2
    assert Alert.objects.count() == 2


def test_prune_keeps_resolved_incident_that_still_has_a_firing_alert():
    kept = incident(resolved_ago=40 * DAY, alert_statuses=("resolved", "firing"))

    prune("--incidents-days", "30")

    assert Incident.objects.filter(pk=kept.pk).exists()
    assert kept.alerts.count() == 2


def test_prune_dry_run_counts_and_deletes_nothing():
    delivery(30 * DAY)
    task_result("SUCCESSFUL", 30 * DAY)
    incident(resolved_ago=40 * DAY)

    output = prune("--dry-run", "--incidents-days", "30")

    assert output.strip() == (
        "would prune deliveries=1 task_results=1 incidents=1 alerts=1"
    )
    assert WebhookDelivery.objects.count() == 1
    assert DBTaskResult.objects.count() == 1
    assert Incident.objects.count() == 1


def test_prune_works_in_small_batches_and_twice_is_harmless():
    for _ in range(5):
        delivery(30 * DAY)

    first = prune("--batch-size", "2")
    second = prune("--batch-size", "2")

    assert "deliveries=5" in first
    assert "deliveries=0" in second
    assert not WebhookDelivery.objects.exists()


def test_prune_counts_only_rows_it_deleted_itself_beside_another_run():
    for _ in range(4):
        delivery(30 * DAY)
    taken = []

    def other_run_first(execute, sql, params, many, context):  # noqa: ANN001, ANN202
        # Another prune deletes the first batch just before this one does.
        if sql.startswith('DELETE FROM "alerts_webhookdelivery"') and not taken:
            taken.append(execute(sql, params, many, context))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(other_run_first):
        output = prune("--batch-size", "2")

    assert taken
    assert "deliveries=2" in output
    assert not WebhookDelivery.objects.exists()


def test_prune_rejects_days_below_one():
    with pytest.raises(CommandError, match="--tasks-days: must be from 1 to 36500"):
        prune("--tasks-days", "0")


@pytest.mark.parametrize(
    ("option", "value", "allowed"),
    [
        ("--tasks-days", "99999999", "from 1 to 36500"),
        ("--deliveries-days", "999999999", "from 1 to 36500"),
        ("--incidents-days", "999999999", "from 0 to 36500"),
        ("--batch-size", "9" * 23, "from 1 to 100000"),
    ],
)
def test_prune_rejects_a_huge_count_in_one_line_not_a_traceback(option, value, allowed):
    code, stderr = run_from_command_line("prune", option, value)

    assert code == 2
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1] == (
        f"manage.py prune: error: argument {option}: must be {allowed}, not {value}"
    )


def test_prune_takes_the_longest_retention():
    old = delivery(36501 * DAY)

    output = prune("--deliveries-days", "36500", "--tasks-days", "36500")

    assert "deliveries=1" in output
    assert not WebhookDelivery.objects.filter(pk=old.pk).exists()
