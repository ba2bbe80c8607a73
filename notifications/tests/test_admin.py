"""The Slack outbox in the admin: retrying failed messages."""

import pytest
from django.contrib.messages import get_messages

from notifications.models import MessageState
from notifications.tests.factories import SlackMessageFactory

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
