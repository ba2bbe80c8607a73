import socket

import pytest

from notifications.slack import SlackClient, SlackError
from notifications.tests.fake_slack import CHANNEL, TOKEN, FakeSlack

PAYLOAD = {"text": "hello", "attachments": []}


@pytest.fixture
def fake():  # noqa: ANN201
    fake = FakeSlack()
    yield fake
    fake.stop()


def client_for(url: str) -> SlackClient:
    return SlackClient(token=TOKEN, channel=CHANNEL, base_url=url, timeout=2)


def test_post_and_update_talk_to_the_slack_api(fake):  # noqa: ANN001
    client = client_for(fake.api_url)
    ts, channel = client.post_message(PAYLOAD)
    client.update_message({"text": "edited", "attachments": []}, channel=channel, ts=ts)

    assert [c.method for c in fake.calls] == ["chat.postMessage", "chat.update"]
    assert fake.messages[ts].text == "edited"
    assert fake.server.requests[0].path == "/api/chat.postMessage"


def test_rate_limit_is_transient_with_retry_after(fake):  # noqa: ANN001
    fake.rate_limit(retry_after=3)
    with pytest.raises(SlackError) as caught:
        client_for(fake.api_url).post_message(PAYLOAD)
    assert caught.value.transient and caught.value.retry_after == 3.0
    assert len(fake.calls) == 1  # the client itself never retries


def test_server_errors_are_transient(fake):  # noqa: ANN001
    fake.server_error()
    with pytest.raises(SlackError) as caught:
        client_for(fake.api_url).post_message(PAYLOAD)
    assert caught.value.transient and caught.value.code == "http_500"


@pytest.mark.parametrize(
    "error", ["channel_not_found", "invalid_auth", "not_in_channel"]
)
def test_configuration_errors_are_permanent(fake, error):  # noqa: ANN001
    fake.slack_error(error)
    with pytest.raises(SlackError) as caught:
        client_for(fake.api_url).post_message(PAYLOAD)
    assert not caught.value.transient and caught.value.code == error


def test_a_slack_that_cannot_be_reached_is_transient():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SlackError) as caught:
        client_for(f"http://127.0.0.1:{port}/api/").post_message(PAYLOAD)
    assert caught.value.transient
