"""The Slack outbox in the admin: retrying failed messages, and nothing else
written by hand."""

import pytest
from django.contrib.messages import get_messages

from alerts.events import alerts_fired
from kuberca.testing.http import Reply
from notifications.admin import SlackMessageAdmin
from notifications.models import MessageState, SlackMessage
from notifications.tests.factories import AlertFactory, SlackMessageFactory
from notifications.tests.helpers import open_incident

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_static_storage")]

MESSAGES = "/admin/notifications/slackmessage/"


def test_retry_action_queues_failed_messages_again(staff_client):
    message = SlackMessageFactory(state=MessageState.FAILED, error="ratelimited")

    response = staff_client.post(
        MESSAGES, {"action": "retry_failed", "_selected_action": [message.pk]}
    )

    assert response.status_code == 302
    message.refresh_from_db()
    assert message.state == MessageState.PENDING


def test_retrying_a_root_retries_the_replies_it_failed(staff_client):
    root = SlackMessageFactory(state=MessageState.FAILED, error="channel_not_found")
    waiting = SlackMessageFactory(
        incident=root.incident,
        kind="alert_firing",
        state=MessageState.FAILED,
        error="root message not posted: channel_not_found",
    )
    refused = SlackMessageFactory(
        incident=root.incident,
        kind="alert_firing",
        state=MessageState.FAILED,
        error="msg_too_long",
    )

    response = staff_client.post(
        MESSAGES, {"action": "retry_failed", "_selected_action": [root.pk]}
    )

    assert response.status_code == 302
    states = dict(SlackMessage.objects.values_list("pk", "state"))
    assert states == {
        root.pk: MessageState.PENDING,
        waiting.pk: MessageState.PENDING,
        refused.pk: MessageState.FAILED,
    }


def test_retry_action_with_a_malformed_id_changes_nothing(staff_client):
    message = SlackMessageFactory(state=MessageState.FAILED, error="ratelimited")

    response = staff_client.post(
        MESSAGES,
        {"action": "retry_failed", "_selected_action": [message.pk, "abc"]},
    )

    assert response.status_code == 302
    message.refresh_from_db()
    assert message.state == MessageState.FAILED
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "The selection holds an id that is not valid here. No items have been changed."
    ]


def test_retry_action_posts_messages_that_failed_more_than_a_day_ago(
    staff_client,
    fake_slack,
    signal,
    clock,
    run_tasks,
    django_capture_on_commit_callbacks,
):  # noqa: ANN001
    """The bot was out of the channel over a weekend: once it is back, a
    retry posts what failed, instead of giving up at once as too old."""
    fake_slack._script.append(Reply(200, {"ok": False, "error": "not_in_channel"}))
    open_incident(signal)
    run_tasks()
    failed = list(SlackMessage.objects.values_list("pk", "state"))
    assert {state for _, state in failed} == {MessageState.FAILED}
    created = dict(SlackMessage.objects.values_list("pk", "created_at"))
    clock.advance(3 * 24 * 3600)

    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(
            MESSAGES,
            {"action": "retry_failed", "_selected_action": [pk for pk, _ in failed]},
        )
    run_tasks()

    assert set(SlackMessage.objects.values_list("state", flat=True)) == {
        MessageState.SENT
    }
    assert len(fake_slack.posts()) == 2
    # The operators' record of when each message was owed stays as it was.
    assert dict(SlackMessage.objects.values_list("pk", "created_at")) == created


def test_retry_action_is_refused_to_a_staff_user_who_may_only_view(viewer_client):  # noqa: ANN001
    client = viewer_client("view_slackmessage")
    message = SlackMessageFactory(state=MessageState.FAILED, error="ratelimited")

    listing = client.get(MESSAGES)
    response = client.post(
        MESSAGES, {"action": "retry_failed", "_selected_action": [message.pk]}
    )

    assert listing.status_code == 200
    assert response.status_code in (200, 302)
    message.refresh_from_db()
    assert message.state == MessageState.FAILED


def test_the_outbox_deletes_no_message_so_a_thread_is_never_posted_twice(
    staff_client, fake_slack, signal, run_tasks
):  # noqa: ANN001
    incident, _ = open_incident(signal)
    run_tasks()
    root = SlackMessage.objects.roots().get()

    listing = staff_client.get(MESSAGES)
    deleted = staff_client.post(
        MESSAGES,
        {"action": "delete_selected", "_selected_action": [root.pk], "post": "yes"},
    )
    page = staff_client.post(f"{MESSAGES}{root.pk}/delete/", {"post": "yes"})
    joined = AlertFactory(incident=incident)
    signal(alerts_fired, alert_ids=[joined.pk])
    run_tasks()

    assert "delete_selected" not in listing.content.decode()
    assert deleted.status_code in (200, 302)
    assert page.status_code == 403
    assert list(SlackMessage.objects.roots().values_list("pk", flat=True)) == [root.pk]
    assert len(fake_slack.roots()) == 1


def test_a_message_page_offers_no_save_and_a_post_writes_nothing(
    staff_client, monkeypatch
):  # noqa: ANN001
    """The worker posts the message while an operator's save is under way:
    a save of the page as read would put it back to pending, to be posted
    again."""
    message = SlackMessageFactory(state=MessageState.PENDING)
    url = f"{MESSAGES}{message.pk}/change/"
    read = SlackMessageAdmin.get_object

    def read_then_sent(self, request, object_id, from_field=None):  # noqa: ANN001, ANN202
        row = read(self, request, object_id, from_field)
        SlackMessage.objects.filter(pk=message.pk).update(
            state=MessageState.SENT, ts="1700000000.000001"
        )
        return row

    page = staff_client.get(url)
    monkeypatch.setattr(SlackMessageAdmin, "get_object", read_then_sent)
    posted = staff_client.post(url, {"_save": "Save"})

    assert 'name="_save"' not in page.content.decode()
    assert posted.status_code in (200, 302)
    message.refresh_from_db()
    assert (message.state, message.ts) == (MessageState.SENT, "1700000000.000001")
