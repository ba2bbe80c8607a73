import logging
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from alerts.events import alert_analyzed, alerts_fired, alerts_moved, alerts_resolved
from alerts.models import Alert, AlertStatus
from incidents.events import (
    incident_changed,
    incident_opened,
    incident_summarized,
)
from kuberca.testing.http import Reply
from notifications import services
from notifications.models import MessageKind, MessageState, SlackMessage
from notifications.tasks import deliver_slack, recover_slack
from notifications.tests.factories import (
    AlertAnalysisFactory,
    AlertFactory,
    IncidentFactory,
    SlackMessageFactory,
)
from notifications.tests.helpers import open_incident, unsent

pytestmark = pytest.mark.django_db


def root_of(incident) -> SlackMessage:  # noqa: ANN001
    return SlackMessage.objects.get(incident=incident, kind=MessageKind.INCIDENT_ROOT)


def test_new_incident_posts_root_then_reply_in_its_thread(
    fake_slack, signal, run_tasks
):  # noqa: ANN001
    incident, alerts = open_incident(signal, n=2)

    run_tasks()

    posts = fake_slack.posts()
    assert [bool(p.body.get("thread_ts")) for p in posts] == [False, True]
    root_ts = posts[0].ts
    assert posts[1].body["thread_ts"] == root_ts
    assert "2 alerts firing" in posts[1].body["text"]
    root = root_of(incident)
    assert root.state == MessageState.SENT and root.ts == root_ts
    assert root.thread_ts == root_ts
    assert set(Alert.objects.values_list("thread_ts", flat=True)) == {root_ts}


def test_nothing_is_recorded_or_enqueued_without_slack_settings(settings, signal):  # noqa: ANN001
    settings.SLACK_ENABLED = False

    open_incident(signal, n=3)

    assert SlackMessage.objects.count() == 0
    assert not DBTaskResult.objects.filter(task_path__startswith="notifications.")


def test_rows_are_recorded_in_the_write_and_enqueued_only_on_commit(
    fake_slack, django_capture_on_commit_callbacks
):  # noqa: ANN001
    incident = IncidentFactory()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        incident_opened.send(sender=None, incident_ids=[incident.pk])

    assert root_of(incident).state == MessageState.PENDING
    assert not DBTaskResult.objects.filter(task_path__startswith="notifications.")
    assert callbacks


def test_running_delivery_twice_posts_once(fake_slack, signal, run_tasks):  # noqa: ANN001
    incident, _ = open_incident(signal)
    run_tasks()

    deliver_slack.call([incident.pk])
    deliver_slack.call([incident.pk])

    assert len(fake_slack.posts()) == 2
    assert fake_slack.updates() == []


def test_a_second_worker_finds_the_thread_busy_and_posts_nothing(
    fake_slack, signal, clock
):  # noqa: ANN001
    incident, _ = open_incident(signal)
    SlackMessage.objects.filter(pk=root_of(incident).pk).update(
        lease_owner="other-worker", lease_expires_at=clock.now + services.LEASE
    )

    result = services.thread_deliver(incident_id=incident.pk)

    assert result.busy
    assert fake_slack.calls == []


class WorkerKilled(BaseException):
    """Stands for SIGKILL: nothing of the task's own cleanup runs."""


def test_worker_killed_between_claim_and_post_posts_once_after_recovery(
    fake_slack, signal, clock, run_tasks, monkeypatch
):  # noqa: ANN001
    incident, _ = open_incident(signal)
    real_render = services.render_message

    def killed(message):  # noqa: ANN001, ANN202
        raise WorkerKilled()

    monkeypatch.setattr(services, "render_message", killed)
    with pytest.raises(WorkerKilled):
        deliver_slack.call([incident.pk])
    assert root_of(incident).state == MessageState.SENDING
    monkeypatch.setattr(services, "render_message", real_render)

    deliver_slack.call([incident.pk])  # the dead worker's lease still holds
    assert fake_slack.calls == []

    DBTaskResult.objects.all().delete()  # the kick task died with the worker
    clock.advance(services.RECOVER_AFTER.total_seconds() + 1)
    assert recover_slack.call() == 1
    run_tasks()

    assert len([p for p in fake_slack.posts() if "thread_ts" not in p.body]) == 1
    assert len(fake_slack.posts()) == 2
    assert root_of(incident).attempts == 2
    assert unsent() == 0


def test_recover_re_enqueues_pending_rows_whose_task_was_lost(
    fake_slack, clock, run_tasks, django_capture_on_commit_callbacks
):  # noqa: ANN001
    incident = IncidentFactory()
    alert = AlertFactory(incident=incident)
    with django_capture_on_commit_callbacks(execute=False):  # crash before enqueue
        incident_opened.send(sender=None, incident_ids=[incident.pk])
        alerts_fired.send(sender=None, alert_ids=[alert.pk])
    assert recover_slack.call() == 0  # too young: its task may still come

    clock.advance(services.RECOVER_AFTER.total_seconds() + 1)
    assert recover_slack.call() == 1
    run_tasks()

    assert len(fake_slack.posts()) == 2
    assert recover_slack.call() == 0


def test_recover_finds_every_lost_thread_however_many_rows_one_holds():
    now = timezone.now()
    quiet = IncidentFactory(fired_at=now - timedelta(hours=1))
    busy = IncidentFactory(fired_at=now)  # first under the incidents' ordering
    SlackMessageFactory(incident=quiet)
    SlackMessageFactory(incident=busy)
    SlackMessageFactory.create_batch(3, incident=busy, kind=MessageKind.ALERT_FIRING)
    SlackMessage.objects.update(created_at=now - services.RECOVER_AFTER * 2)

    assert services.threads_to_recover(limit=2) == sorted([busy.pk, quiet.pk])


def test_root_is_edited_once_for_changes_collapsed_to_the_latest_state(
    fake_slack, signal, clock, run_tasks
):  # noqa: ANN001
    incident, _ = open_incident(signal)
    run_tasks()
    clock.advance(1)

    for severity, title in [("critical", "Disk full"), ("info", "Disk almost full")]:
        incident.severity, incident.title = severity, title
        incident.save(update_fields=["severity", "title"])
        signal(incident_changed, incident_id=incident.pk, fields=["severity", "title"])
    run_tasks()
    assert fake_slack.updates() == []  # within the thread interval

    clock.advance(30)
    run_tasks()

    (update,) = fake_slack.updates()
    assert update.body["ts"] == root_of(incident).ts
    assert "Disk almost full" in update.body["text"]
    assert update.body["attachments"][0]["color"] == "#17a2b8"
    root = root_of(incident)
    assert root.posted_revision == root.revision


def test_root_is_edited_when_only_the_severity_changes(
    fake_slack,
    signal,
    clock,
    run_tasks,
    auth_client,
    django_capture_on_commit_callbacks,
):  # noqa: ANN001
    incident, _ = open_incident(signal, severity="warning")
    run_tasks()
    clock.advance(60)

    with django_capture_on_commit_callbacks(execute=True):
        response = auth_client.put(
            f"/api/v1/incidents/{incident.pk}", {"severity": "critical"}, format="json"
        )
    assert response.status_code == 200, response.content
    run_tasks()

    (update,) = fake_slack.updates()
    assert update.body["ts"] == root_of(incident).ts
    assert update.body["attachments"][0]["color"] == "#dc3545"


def mark_resolved(incident, signal) -> None:  # noqa: ANN001
    """Resolve the incident in its row and say so: the root's edit is due."""
    incident.status = "resolved"
    incident.save(update_fields=["status"])
    signal(incident_changed, incident_id=incident.pk, fields=["status"])


def run_rounds(run_tasks, clock, rounds: int, every: float) -> None:  # noqa: ANN001
    """Run the queue, let `every` seconds pass and recover, `rounds` times."""
    for _ in range(rounds):
        run_tasks()
        clock.advance(every)
        recover_slack.call()


def test_a_root_edit_days_into_an_incident_is_retried_after_a_server_error(
    fake_slack, signal, clock, run_tasks
):  # noqa: ANN001
    """The edit's tries run from when it became due, not from the root's
    post: a 500 on the resolve of a two-day incident must not leave its root
    showing "firing" for good."""
    incident, _ = open_incident(signal)
    run_tasks()
    clock.advance(2 * 24 * 3600)
    fake_slack.server_error(times=1)

    mark_resolved(incident, signal)
    run_rounds(run_tasks, clock, 10, every=60)

    (update,) = fake_slack.updates()
    assert "Resolved" in update.body["text"]
    root = root_of(incident)
    assert (root.posted_revision, root.error) == (root.revision, "")


def test_a_root_edit_failing_for_a_day_gives_up(fake_slack, signal, clock, run_tasks):  # noqa: ANN001
    incident, _ = open_incident(signal)
    run_tasks()
    fake_slack.server_error(times=10_000)
    mark_resolved(incident, signal)

    run_rounds(run_tasks, clock, 30, every=3600)
    tried = len(fake_slack.calls)
    run_rounds(run_tasks, clock, 5, every=3600)

    root = root_of(incident)
    assert (root.posted_revision, root.error) == (root.revision, "gave up: http_500")
    assert root.tries_since is None
    assert len(fake_slack.calls) == tried


def test_changes_the_root_does_not_show_edit_nothing(
    fake_slack, signal, clock, run_tasks
):  # noqa: ANN001
    incident, _ = open_incident(signal)
    run_tasks()

    signal(incident_changed, incident_id=incident.pk, fields=["analysis_summary"])
    clock.advance(60)
    run_tasks()

    assert fake_slack.updates() == []


def test_resolutions_reply_in_the_thread_and_edit_the_root(
    fake_slack, signal, clock, run_tasks
):  # noqa: ANN001
    incident, alerts = open_incident(signal, n=2)
    run_tasks()
    clock.advance(60)

    Alert.objects.filter(pk__in=[a.pk for a in alerts]).update(
        status=AlertStatus.RESOLVED
    )
    incident.status = "resolved"
    incident.save(update_fields=["status"])
    signal(alerts_resolved, alert_ids=[a.pk for a in alerts], stale=False)
    signal(incident_changed, incident_id=incident.pk, fields=["status"])
    run_tasks()

    root_ts = root_of(incident).ts
    reply = fake_slack.posts()[-1]
    assert reply.body["thread_ts"] == root_ts
    assert "2 alerts resolved" in reply.body["text"]
    assert reply.body["attachments"][0]["color"] == "#36a64f"
    (update,) = fake_slack.updates()
    assert update.body["attachments"][0]["color"] == "#36a64f"
    assert ":white_check_mark:" in update.body["text"]


def test_analysis_and_summary_are_replies_in_the_incident_thread(
    fake_slack, signal, clock, run_tasks
):  # noqa: ANN001
    incident, (alert,) = open_incident(signal)
    run_tasks()
    analysis = AlertAnalysisFactory(
        alert=alert, analysis="# Cause\n\nThe **node** is out of disk."
    )
    no_markdown = AlertAnalysisFactory(
        alert=alert, status="resolved", analysis="", summary="Disk freed."
    )
    clock.advance(60)

    signal(alert_analyzed, alert_id=alert.pk, analysis_id=analysis.pk, status="firing")
    signal(alert_analyzed, alert_id=alert.pk, analysis_id=analysis.pk, status="firing")
    signal(
        alert_analyzed, alert_id=alert.pk, analysis_id=no_markdown.pk, status="resolved"
    )
    incident.analysis_summary = "Disk filled by **logs**; rotation fixed."
    incident.save(update_fields=["analysis_summary"])
    signal(incident_summarized, incident_id=incident.pk, generation=1)
    signal(incident_summarized, incident_id=incident.pk, generation=1)
    run_tasks()

    replies = fake_slack.posts()[2:]
    assert len(replies) == 3
    assert {r.body["thread_ts"] for r in replies} == {root_of(incident).ts}
    first = replies[0].body["attachments"][0]
    assert first["color"] == "#6f42c1"
    texts = [b["text"]["text"] for b in first["blocks"]]
    assert "*Cause*" in texts[1] and "*node*" in texts[1]
    assert (
        "Disk freed." in replies[1].body["attachments"][0]["blocks"][1]["text"]["text"]
    )
    assert "*logs*" in replies[2].body["attachments"][0]["blocks"][1]["text"]["text"]


def test_alerts_joining_while_a_reply_waits_go_into_that_reply(
    fake_slack, signal, clock, run_tasks
):  # noqa: ANN001
    incident, _ = open_incident(signal)
    run_tasks()
    for _ in range(3):
        clock.advance(1)
        alert = AlertFactory(incident=incident)
        signal(alerts_fired, alert_ids=[alert.pk])
        run_tasks()
    assert len(fake_slack.posts()) == 2

    clock.advance(30)
    run_tasks()

    assert len(fake_slack.posts()) == 3
    assert "3 alerts firing" in fake_slack.posts()[-1].body["text"]
    assert len(fake_slack.updates()) == 1


def test_an_alert_resolving_is_told_after_its_firing_not_folded_before_it(
    fake_slack, signal, clock, run_tasks
):  # noqa: ANN001
    incident, (flapping,) = open_incident(signal)
    AlertFactory(incident=incident)
    run_tasks()

    # It resolves, and fires again as a new occurrence that resolves too,
    # all while the resolution reply waits for the thread's next round.
    Alert.objects.filter(pk=flapping.pk).update(status=AlertStatus.RESOLVED)
    signal(alerts_resolved, alert_ids=[flapping.pk])
    again = AlertFactory(
        incident=incident, fingerprint=flapping.fingerprint, fired_at=clock.advance(1)
    )
    signal(alerts_fired, alert_ids=[again.pk])
    Alert.objects.filter(pk=again.pk).update(status=AlertStatus.RESOLVED)
    signal(alerts_resolved, alert_ids=[again.pk])
    for _ in range(4):
        clock.advance(60)
        run_tasks()

    told = [
        (m.kind, m.alert_ids)
        for m in SlackMessage.objects.replies().order_by("sent_at", "id")
    ]
    assert told[1:] == [
        (MessageKind.ALERT_RESOLVED, [flapping.pk]),
        (MessageKind.ALERT_FIRING, [again.pk]),
        (MessageKind.ALERT_RESOLVED, [again.pk]),
    ]
    assert [p.body["text"].split(":")[0] for p in fake_slack.posts()[2:]] == [
        "1 alert resolved",
        "1 alert firing",
        "1 alert resolved",
    ]
    assert unsent() == 0


def test_alerts_of_both_kinds_still_fold_when_none_is_told_twice(
    fake_slack, signal, clock, run_tasks
):  # noqa: ANN001
    incident, alerts = open_incident(signal, n=3)
    run_tasks()

    Alert.objects.filter(pk=alerts[0].pk).update(status=AlertStatus.RESOLVED)
    signal(alerts_resolved, alert_ids=[alerts[0].pk])
    joined = AlertFactory(incident=incident, fired_at=clock.advance(1))
    signal(alerts_fired, alert_ids=[joined.pk])
    Alert.objects.filter(pk=alerts[1].pk).update(status=AlertStatus.RESOLVED)
    signal(alerts_resolved, alert_ids=[alerts[1].pk])
    for _ in range(3):
        clock.advance(60)
        run_tasks()

    assert [
        (m.kind, m.alert_ids) for m in SlackMessage.objects.replies().order_by("id")
    ][1:] == [
        (MessageKind.ALERT_RESOLVED, [alerts[0].pk, alerts[1].pk]),
        (MessageKind.ALERT_FIRING, [joined.pk]),
    ]


def test_hundred_alerts_joining_within_a_minute_make_at_most_five_messages(
    fake_slack, signal, clock, run_tasks
):  # noqa: ANN001
    incident, _ = open_incident(signal)
    run_tasks()
    for _ in range(99):
        clock.advance(0.6)
        alert = AlertFactory(incident=incident)
        signal(alerts_fired, alert_ids=[alert.pk])
        signal(incident_changed, incident_id=incident.pk, fields=["alert_count"])
        run_tasks()
    clock.advance(60)
    run_tasks()

    assert len(fake_slack.posts()) <= 5
    assert len(fake_slack.calls) <= 7
    firing = SlackMessage.objects.filter(kind=MessageKind.ALERT_FIRING)
    assert sum(len(m.alert_ids) for m in firing) == 100
    assert unsent() == 0
    assert Alert.objects.exclude(thread_ts=root_of(incident).ts).count() == 0


def test_moved_alerts_bring_the_target_root_up_to_date(
    fake_slack, signal, clock, run_tasks
):  # noqa: ANN001
    target, _ = open_incident(signal)
    run_tasks()
    moved = AlertFactory(incident=target)
    clock.advance(60)

    signal(alerts_moved, alert_ids=[moved.pk], incident_id=target.pk, reason="moved")
    run_tasks()

    (update,) = fake_slack.updates()
    assert (
        "*Alerts firing:* 2"
        in update.body["attachments"][0]["blocks"][0]["text"]["text"]
    )


def test_receivers_cost_the_same_statements_for_one_alert_or_fifty(
    fake_slack, django_capture_on_commit_callbacks
):  # noqa: ANN001
    def statements(n: int) -> int:
        incident = IncidentFactory()
        alerts = AlertFactory.create_batch(n, incident=incident)
        other = IncidentFactory()
        others = AlertFactory.create_batch(n, incident=other)
        ids = [a.pk for a in alerts + others]
        with CaptureQueriesContext(connection) as queries:
            with django_capture_on_commit_callbacks(execute=True):
                alerts_fired.send(sender=None, alert_ids=ids)
                alerts_fired.send(sender=None, alert_ids=ids)
                alerts_resolved.send(sender=None, alert_ids=ids, stale=False)
        return len(queries)

    assert statements(1) == statements(50)


def test_rate_limited_calls_are_all_delivered_afterwards_once_in_order(
    fake_slack, signal, clock, run_tasks
):  # noqa: ANN001
    incidents = [open_incident(signal, n=2)[0] for _ in range(3)]
    fake_slack.rate_limit(times=4, retry_after=1)

    for _ in range(20):
        run_tasks()
        if not unsent():
            break
        clock.advance(2)

    assert unsent() == 0
    assert len([c for c in fake_slack.calls if c.answered == 429]) == 4
    assert len(fake_slack.posts()) == 6  # each root and each reply once
    for incident in incidents:
        root = root_of(incident)
        thread = fake_slack.thread(root.ts)
        assert len(thread) == 1
        assert list(fake_slack.messages).index(root.ts) < list(
            fake_slack.messages
        ).index(thread[0].ts)


def test_an_hour_of_slack_outage_loses_nothing(fake_slack, signal, clock, run_tasks):  # noqa: ANN001
    fake_slack.server_error(times=10_000)
    incidents = [open_incident(signal)[0] for _ in range(2)]
    for _ in range(60):
        run_tasks()
        clock.advance(60)
    assert fake_slack.posts() == []
    assert SlackMessage.objects.filter(state=MessageState.FAILED).count() == 0
    replies_before_root = [c for c in fake_slack.calls if c.body.get("thread_ts")]
    assert replies_before_root == []

    fake_slack._script.clear()  # Slack is back
    clock.advance(300)
    recover_slack.call()
    run_tasks()

    assert unsent() == 0
    assert len(fake_slack.posts()) == 4
    for incident in incidents:
        assert len(fake_slack.thread(root_of(incident).ts)) == 1


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (Reply(200, {"ok": False, "error": "channel_not_found"}), "channel_not_found"),
        # Slack took it but gave no ts (or none like Slack's, which would not
        # fit the row): a retry would post it again.
        (Reply(200, {"ok": True, "channel": "C0KUBERCA"}), "no ts in response"),
        *(
            (Reply(200, {"ok": True, "channel": "C1", "ts": ts}), "no ts in response")
            for ts in ["1" * 100, "1700000000.\u0000001", "soon"]
        ),
    ],
)
def test_permanent_errors_are_recorded_and_logged_once_without_retry(
    fake_slack, signal, clock, run_tasks, caplog, answer, error
):  # noqa: ANN001
    fake_slack._script.append(answer)
    caplog.set_level(logging.ERROR, logger="notifications")
    incident, _ = open_incident(signal)

    for _ in range(3):
        run_tasks()
        clock.advance(600)
        recover_slack.call()

    root = root_of(incident)
    assert root.state == MessageState.FAILED and root.error == error
    reply = SlackMessage.objects.get(kind=MessageKind.ALERT_FIRING)
    assert reply.state == MessageState.FAILED
    assert len(fake_slack.calls) == 1
    logged = [r.getMessage() for r in caplog.records]
    assert len([m for m in logged if error in m and "replies" not in m]) == 1
    assert len([m for m in logged if "replies dropped" in m]) == 1


def test_a_channel_unlike_slacks_in_the_answer_keeps_the_one_posted_to(
    fake_slack, signal, run_tasks
):  # noqa: ANN001
    answer = {"ok": True, "channel": "C" * 100, "ts": "1700000000.000001"}
    fake_slack._script.append(Reply(200, answer))
    incident, _ = open_incident(signal)

    run_tasks()

    root = root_of(incident)
    assert (root.state, root.channel) == (MessageState.SENT, "C0KUBERCA")
    reply = fake_slack.calls[-1].body
    assert (reply["channel"], reply["thread_ts"]) == ("C0KUBERCA", root.ts)


def test_server_errors_are_retried_with_backoff(fake_slack, signal, clock, run_tasks):  # noqa: ANN001
    fake_slack.server_error(times=2)
    incident, _ = open_incident(signal)

    run_tasks()
    root = root_of(incident)
    # Slack may have posted before its 500: the row stays "sending", and the
    # next attempt looks for the post before posting again.
    assert root.state == MessageState.SENDING and root.error == "http_500"
    assert root.next_attempt_at > clock.now
    run_tasks()
    assert len(fake_slack.calls) == 1  # not before its time

    for _ in range(5):
        clock.advance(10)
        run_tasks()

    assert root_of(incident).state == MessageState.SENT
    assert root_of(incident).attempts == 3
    assert len(fake_slack.posts()) == 2
    assert [(c.method, c.answered) for c in fake_slack.calls][:4] == [
        ("chat.postMessage", 500),
        ("conversations.history", 500),  # still unsure
        ("conversations.history", 200),  # not there: post it
        ("chat.postMessage", 200),
    ]


def test_an_unreadable_answer_is_retried_with_backoff_not_left_sending(
    fake_slack, signal, clock, run_tasks
):  # noqa: ANN001
    fake_slack._script.append(Reply(200, b'{"ok": true, "ts": "1.2", "x": "\xff"}'))
    incident, _ = open_incident(signal)

    run_tasks()
    root = root_of(incident)
    # Slack may have posted it: the next attempt looks before posting.
    assert root.state == MessageState.SENDING
    assert root.error == "unreadable answer: UnicodeDecodeError"
    assert root.next_attempt_at > clock.now

    for _ in range(5):
        clock.advance(10)
        run_tasks()

    assert root_of(incident).state == MessageState.SENT
    assert unsent() == 0
    assert len(fake_slack.posts()) == 2


@pytest.mark.parametrize("retry_after", ["1e12", "inf", "99999999"])
def test_a_retry_after_beyond_reason_waits_at_most_an_hour(
    fake_slack, signal, clock, run_tasks, retry_after
):  # noqa: ANN001
    fake_slack._script.append(
        Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": retry_after})
    )
    incident, _ = open_incident(signal)

    run_tasks()
    root = root_of(incident)
    assert root.state == MessageState.PENDING and root.error == "ratelimited"
    assert root.next_attempt_at <= clock.now + timedelta(
        seconds=services.RETRY_AFTER_CAP_SECONDS + 1
    )

    clock.advance(services.RETRY_AFTER_CAP_SECONDS + 1)
    run_tasks()
    assert root_of(incident).state == MessageState.SENT


def test_retry_delay_grows_with_jitter_and_honours_retry_after():
    assert services.retry_delay(1, rand=lambda: 0.0) == 1.0
    assert services.retry_delay(1, rand=lambda: 1.0) == 2.0
    assert services.retry_delay(4, rand=lambda: 1.0) == 16.0
    assert services.retry_delay(30, rand=lambda: 1.0) == services.BACKOFF_CAP_SECONDS
    assert services.retry_delay(5, retry_after=1.0, rand=lambda: 0.0) == 1.0
    assert services.retry_delay(5, retry_after=7.0, rand=lambda: 1.0) == 7.5
    cap = services.RETRY_AFTER_CAP_SECONDS
    assert services.retry_delay(1, retry_after=1e12, rand=lambda: 0.0) == cap
    assert services.retry_delay(1, retry_after=float("inf"), rand=lambda: 0.0) == cap


def test_the_kick_posts_roots_first_and_leaves_replies_to_a_later_task(
    fake_slack, signal
):  # noqa: ANN001
    first, _ = open_incident(signal)
    second, _ = open_incident(signal)

    totals = deliver_slack.call([first.pk, second.pk], stage="roots")

    assert totals["posted"] == 2
    assert all("thread_ts" not in p.body for p in fake_slack.posts())
    (later,) = DBTaskResult.objects.filter(
        task_path="notifications.tasks.deliver_slack", priority=0
    )
    assert later.task_result.args == [[first.pk, second.pk]]


def test_one_transaction_of_many_signals_enqueues_one_task(
    fake_slack, django_capture_on_commit_callbacks
):  # noqa: ANN001
    incident = IncidentFactory()
    alert = AlertFactory(incident=incident)
    with django_capture_on_commit_callbacks(execute=True):
        incident_opened.send(sender=None, incident_ids=[incident.pk])
        alerts_fired.send(sender=None, alert_ids=[alert.pk])
        incident_changed.send(sender=None, incident_id=incident.pk, fields=["severity"])

    (kick,) = DBTaskResult.objects.filter(task_path__startswith="notifications.")
    assert kick.priority == 10
    assert kick.task_result.args == [[incident.pk]]


def test_moving_an_alert_edits_the_roots_of_both_incidents(
    fake_slack, signal, clock, run_tasks, django_capture_on_commit_callbacks
):  # noqa: ANN001
    from alerts.services import alert_move

    source, (moved, _) = open_incident(signal, n=2)
    target, _ = open_incident(signal)
    run_tasks()
    clock.advance(60)

    with django_capture_on_commit_callbacks(execute=True):
        alert_move(alert_id=moved.pk, incident_id=target.pk, moved_by="oncall")
    run_tasks()

    edited = {call.body["ts"]: call for call in fake_slack.updates()}
    for incident, count in ((source, 1), (target, 2)):
        root = edited[root_of(incident).ts]
        text = root.body["attachments"][0]["blocks"][0]["text"]["text"]
        assert f"*Alerts firing:* {count}" in text
