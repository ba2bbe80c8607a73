"""A post Slack may have made although kuberca never heard back (SPEC §4:
each message is posted at most once): a worker killed after Slack took the
post, or an answer lost to a timeout. The next attempt looks for the post
(by its metadata) before posting again."""

import logging
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection

from alerts.events import alerts_fired
from kuberca.testing.http import Reply
from notifications import services
from notifications.models import MessageKind, MessageState, SlackMessage
from notifications.slack import LOOKUP_PAGES, METADATA_EVENT
from notifications.tasks import deliver_slack, recover_slack
from notifications.tests.factories import AlertFactory
from notifications.tests.helpers import open_incident, unsent

pytestmark = pytest.mark.django_db


class WorkerKilled(BaseException):
    """Stands for SIGKILL: nothing of the task's own cleanup runs."""


def root_of(incident) -> SlackMessage:  # noqa: ANN001
    return SlackMessage.objects.get(incident=incident, kind=MessageKind.INCIDENT_ROOT)


def replies_of(incident) -> list[SlackMessage]:  # noqa: ANN001
    return list(
        SlackMessage.objects.filter(incident=incident)
        .exclude(kind=MessageKind.INCIDENT_ROOT)
        .order_by("id")
    )


def killed_after_slack_took(signal, monkeypatch, kind: str):  # noqa: ANN001, ANN201
    """An incident whose worker died after Slack took its `kind` message,
    before the row said so."""
    incident, _ = open_incident(signal)
    real = services._Thread._sent
    kinds = {kind}

    def sent(self, message, **kwargs):  # noqa: ANN001, ANN003, ANN202
        if message.kind in kinds:
            kinds.discard(message.kind)
            raise WorkerKilled()
        return real(self, message, **kwargs)

    monkeypatch.setattr(services._Thread, "_sent", sent)
    with pytest.raises(WorkerKilled):
        deliver_slack.call([incident.pk])
    return incident


def recover(clock, run_tasks) -> None:  # noqa: ANN001
    """What the periodic recovery does once the dead worker's lease is over."""
    from django_tasks_db.models import DBTaskResult

    DBTaskResult.objects.filter(task_path__startswith="notifications.").delete()
    clock.advance(services.RECOVER_AFTER.total_seconds() + 1)
    assert recover_slack.call() == 1
    run_tasks()


def test_posts_carry_metadata_naming_their_row(fake_slack, signal, run_tasks):  # noqa: ANN001
    incident, _ = open_incident(signal)

    run_tasks()

    root = root_of(incident)
    (reply,) = replies_of(incident)
    posted = [p.body["metadata"] for p in fake_slack.posts()]
    assert posted == [
        {
            "event_type": METADATA_EVENT,
            "event_payload": {
                "incident_id": incident.pk,
                "message_id": root.pk,
                "revision": root.revision,
            },
        },
        {
            "event_type": METADATA_EVENT,
            "event_payload": {"incident_id": incident.pk, "message_id": reply.pk},
        },
    ]
    # Nothing was unsure, so nothing was looked up.
    assert {c.method for c in fake_slack.calls} == {"chat.postMessage"}


def test_worker_killed_after_slack_took_the_root_posts_it_once(
    fake_slack, signal, clock, run_tasks, monkeypatch
):  # noqa: ANN001
    incident = killed_after_slack_took(signal, monkeypatch, MessageKind.INCIDENT_ROOT)
    assert root_of(incident).state == MessageState.SENDING
    assert len(fake_slack.roots()) == 1

    recover(clock, run_tasks)
    (slack_root,) = fake_slack.roots()
    root = root_of(incident)
    assert (root.state, root.ts, root.thread_ts) == (
        MessageState.SENT,
        slack_root.ts,
        slack_root.ts,
    )
    assert len(fake_slack.thread(slack_root.ts)) == 1  # the reply, once
    history = [c for c in fake_slack.calls if c.method == "conversations.history"]
    assert len(history) == 1
    assert history[0].body["include_all_metadata"] == "1"
    assert float(history[0].body["oldest"]) <= root.created_at.timestamp()
    assert unsent() == 0


def test_worker_killed_after_slack_took_a_reply_posts_it_once(
    fake_slack, signal, clock, run_tasks, monkeypatch
):  # noqa: ANN001
    incident = killed_after_slack_took(signal, monkeypatch, MessageKind.ALERT_FIRING)
    recover(clock, run_tasks)

    (slack_root,) = fake_slack.roots()
    (slack_reply,) = fake_slack.thread(slack_root.ts)
    (reply,) = replies_of(incident)
    assert (reply.state, reply.ts) == (MessageState.SENT, slack_reply.ts)
    lookups = [c for c in fake_slack.calls if c.method.startswith("conversations.")]
    assert [(c.method, c.body["ts"]) for c in lookups] == [
        ("conversations.replies", slack_root.ts)
    ]


def test_a_post_whose_answer_was_lost_is_found_not_posted_again(
    fake_slack, signal, clock, run_tasks, settings
):  # noqa: ANN001
    settings.SLACK_TIMEOUT_SECONDS = 1
    incident, _ = open_incident(signal)
    fake_slack.lose_answers(1, after=1.5)

    run_tasks()
    root = root_of(incident)
    assert root.state == MessageState.SENDING
    assert root.error.startswith("network:") or root.error.startswith("client:")
    assert len(fake_slack.roots()) == 1  # Slack has it all the same

    for _ in range(5):
        clock.advance(30)
        run_tasks()

    (slack_root,) = fake_slack.roots()
    assert root_of(incident).ts == slack_root.ts
    assert len(fake_slack.thread(slack_root.ts)) == 1
    assert unsent() == 0


def test_alerts_do_not_fold_into_a_reply_slack_may_have_posted(
    fake_slack, signal, clock, run_tasks, settings
):  # noqa: ANN001
    settings.SLACK_TIMEOUT_SECONDS = 1
    incident, (first,) = open_incident(signal)
    run_tasks()
    (slack_root,) = fake_slack.roots()
    assert len(fake_slack.thread(slack_root.ts)) == 1
    (reply,) = replies_of(incident)

    # The next reply's answer is lost (after the root's edit); an alert fires
    # meanwhile.
    second = AlertFactory(incident=incident)
    signal(alerts_fired, alert_ids=[second.pk])
    fake_slack.lose_answers(1, after=1.5, skip=1)
    clock.advance(60)
    run_tasks()
    pending = replies_of(incident)[1:]
    assert [r.state for r in pending] == [MessageState.SENDING]
    third = AlertFactory(incident=incident)
    signal(alerts_fired, alert_ids=[third.pk])

    for _ in range(5):
        clock.advance(60)
        run_tasks()

    rows = replies_of(incident)
    assert [r.alert_ids for r in rows] == [[first.pk], [second.pk], [third.pk]]
    assert all(r.state == MessageState.SENT for r in rows)
    assert len(fake_slack.thread(slack_root.ts)) == 3
    assert reply.pk == rows[0].pk


def test_a_lookup_slack_refuses_posts_again_and_says_so(
    fake_slack, signal, clock, run_tasks, monkeypatch, caplog
):  # noqa: ANN001
    incident = killed_after_slack_took(signal, monkeypatch, MessageKind.INCIDENT_ROOT)
    fake_slack.slack_error("missing_scope")  # a token without history scopes

    with caplog.at_level(logging.WARNING, logger="notifications.services"):
        recover(clock, run_tasks)

    assert root_of(incident).state == MessageState.SENT
    # Better twice than never.
    assert len(fake_slack.roots()) == 2
    assert any(
        "lookup of an earlier attempt failed" in r.getMessage()
        and "missing_scope" in r.getMessage()
        for r in caplog.records
    )


def test_a_message_that_kills_its_worker_every_time_fails_after_a_day(
    fake_slack, signal, clock, run_tasks, monkeypatch, caplog
):  # noqa: ANN001
    incident = killed_after_slack_took(signal, monkeypatch, MessageKind.INCIDENT_ROOT)
    fake_slack.calls.clear()
    clock.advance(services.GIVE_UP_AFTER.total_seconds() + 1)

    with caplog.at_level(logging.ERROR, logger="notifications.services"):
        recover(clock, run_tasks)

    root = root_of(incident)
    assert (root.state, root.error) == (MessageState.FAILED, "gave up after 1 attempts")
    assert fake_slack.calls == []  # not tried again, nor looked for
    (reply,) = replies_of(incident)
    assert reply.state == MessageState.FAILED
    assert any("gave up after 1 attempts" in r.getMessage() for r in caplog.records)


def test_a_rate_limited_lookup_does_not_hold_the_channels_posts(
    fake_slack, signal, clock, run_tasks, monkeypatch, settings
):  # noqa: ANN001
    settings.SLACK_CHANNEL_INTERVAL = timedelta(seconds=1)
    incident = killed_after_slack_took(signal, monkeypatch, MessageKind.INCIDENT_ROOT)
    # conversations.history has a rate limit of its own (Slack's tier 3),
    # apart from chat.postMessage's message a second in a channel.
    fake_slack.rate_limit(times=1, retry_after=30)
    recover(clock, run_tasks)
    assert root_of(incident).state == MessageState.SENDING

    other, _ = open_incident(signal)
    run_tasks()

    assert root_of(other).state == MessageState.SENT
    assert [r.state for r in replies_of(other)] == [MessageState.SENT]
    clock.advance(31)
    run_tasks()
    assert len(fake_slack.roots()) == 2  # the first one found, not posted again
    assert unsent() == 0


def test_a_lookup_answer_that_is_not_slacks_is_retried_not_raised(
    fake_slack, signal, clock, run_tasks, monkeypatch
):  # noqa: ANN001
    incident = killed_after_slack_took(signal, monkeypatch, MessageKind.INCIDENT_ROOT)
    fake_slack._push(1, Reply(200, {"ok": True, "messages": 7}))

    recover(clock, run_tasks)
    root = root_of(incident)
    assert root.state == MessageState.SENDING
    assert root.error.startswith("unreadable answer")
    assert root.next_attempt_at is not None

    clock.advance(10)
    run_tasks()
    (slack_root,) = fake_slack.roots()
    assert root_of(incident).ts == slack_root.ts
    assert unsent() == 0


def test_a_lookup_that_reads_every_page_without_an_end_posts_again_and_says_so(
    fake_slack, signal, clock, run_tasks, monkeypatch, caplog
):  # noqa: ANN001
    incident = killed_after_slack_took(signal, monkeypatch, MessageKind.INCIDENT_ROOT)
    # A busy channel: more messages since the row was made than the lookup
    # reads (here, the same cursor for ever).
    page = {
        "ok": True,
        "messages": [{"type": "message", "ts": "1700000000.999999", "text": "x"}],
        "has_more": True,
        "response_metadata": {"next_cursor": "same"},
    }
    fake_slack._push(LOOKUP_PAGES, Reply(200, page))

    with caplog.at_level(logging.WARNING, logger="notifications.services"):
        recover(clock, run_tasks)

    assert root_of(incident).state == MessageState.SENT
    lookups = [c for c in fake_slack.calls if c.method == "conversations.history"]
    assert len(lookups) == LOOKUP_PAGES
    assert any(
        "lookup of an earlier attempt failed" in r.getMessage() for r in caplog.records
    )


@pytest.mark.django_db(transaction=True)
def test_a_lookup_that_outlasts_the_lease_does_not_post_twice(
    fake_slack, signal, settings, monkeypatch
):  # noqa: ANN001
    monkeypatch.setattr(services, "LEASE", timedelta(seconds=1))
    incident, _ = open_incident(signal)
    # A 5xx: Slack may have the post (here it has not).
    fake_slack.server_error(1)
    services.thread_deliver(incident_id=incident.pk, roots_only=True)
    assert root_of(incident).state == MessageState.SENDING
    SlackMessage.objects.filter(pk=root_of(incident).pk).update(next_attempt_at=None)
    # Slack answers slowly: the lookup takes longer than the lease.
    fake_slack.delay = 1.5

    def first_worker() -> None:
        try:
            services.thread_deliver(incident_id=incident.pk, roots_only=True)
        finally:
            connection.close()

    first = threading.Thread(target=first_worker)
    first.start()
    time.sleep(1.2)  # its lease is over; a second worker takes the thread
    services.thread_deliver(incident_id=incident.pk, roots_only=True)
    first.join(timeout=10)

    assert len(fake_slack.roots()) == 1
    assert root_of(incident).ts == fake_slack.roots()[0].ts
