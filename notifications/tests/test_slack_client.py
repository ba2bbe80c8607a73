import socket
import time

import pytest

from kuberca.testing.http import Reply
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


def test_a_proxys_request_timeout_is_transient(fake):  # noqa: ANN001
    fake._script.append(
        Reply(408, b"<html>timeout</html>", {"Content-Type": "text/html"})
    )
    with pytest.raises(SlackError) as caught:
        client_for(fake.api_url).post_message(PAYLOAD)
    assert caught.value.transient and caught.value.code == "http_408"


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


def test_find_post_pages_through_history_and_skips_what_is_not_ours(fake):  # noqa: ANN001
    from kuberca.testing.http import Reply
    from notifications.slack import METADATA_EVENT

    ours = {"event_type": METADATA_EVENT, "event_payload": {"message_id": 7, "x": 1}}
    fake._push(
        1,
        Reply(
            200,
            {
                "ok": True,
                "messages": [
                    "junk",
                    {"ts": "1.1", "metadata": "junk"},
                    {"ts": "1.2", "metadata": {"event_type": "other"}},
                    {"ts": "1.3", "metadata": {**ours, "event_payload": {"id": 7}}},
                    {"ts": 5, "metadata": ours},
                    {"ts": "9" * 100 + ".1", "metadata": ours},
                ],
                "has_more": True,
                "response_metadata": {"next_cursor": "page2"},
            },
        ),
    )
    fake._push(
        1, Reply(200, {"ok": True, "messages": [{"ts": "1.4", "metadata": ours}]})
    )

    found = client_for(fake.api_url).find_post(
        channel=CHANNEL, thread_ts="", oldest=1.5, match={"message_id": 7}
    )

    assert found == ("1.4", {"message_id": 7, "x": 1})
    assert [c.body.get("cursor") for c in fake.calls] == [None, "page2"]
    assert fake.calls[0].body["oldest"] == "1.500000"


def test_find_post_reads_a_thread_and_gives_up_after_its_pages(fake):  # noqa: ANN001
    from kuberca.testing.http import Reply
    from notifications.slack import LOOKUP_PAGES

    page = {
        "ok": True,
        "messages": [],
        "has_more": True,
        "response_metadata": {"next_cursor": "more"},
    }
    fake._push(LOOKUP_PAGES + 1, Reply(200, page))

    with pytest.raises(SlackError) as raised:
        client_for(fake.api_url).find_post(
            channel=CHANNEL, thread_ts="9.9", oldest=0, match={"message_id": 1}
        )

    # The post may be on a page left unread: nothing is known.
    assert not raised.value.transient
    assert len(fake.calls) == LOOKUP_PAGES
    assert {(c.method, c.body["ts"]) for c in fake.calls} == {
        ("conversations.replies", "9.9")
    }


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, b'{"ok": true, "ts": "1.2", "x": "\xff"}'),
        Reply(
            200,
            b'{"ok": true, "ts": "1.2"}',
            {"Content-Type": "application/json; charset=klingon"},
        ),
        Reply(200, b"[1, 2]"),
        Reply(200, b'{"ok": true, "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
        Reply(200, b"<html>proxy says hi</html>", {"Content-Type": "text/html"}),
        Reply(200, {"ok": False}),
        Reply(200, b"\x1f\x8b", {"Content-Type": "application/gzip"}),
    ],
    ids=[
        "not-utf8",
        "unknown-charset",
        "array",
        "nested",
        "html",
        "no-error-code",
        "gzip",
    ],
)
def test_an_answer_that_is_not_slacks_is_transient(fake, reply):  # noqa: ANN001
    fake._script.append(reply)
    with pytest.raises(SlackError) as caught:
        client_for(fake.api_url).post_message(PAYLOAD)
    assert caught.value.transient
    assert caught.value.code.startswith("unreadable answer")


def test_an_answer_trickled_past_the_timeout_is_a_lost_answer(fake):  # noqa: ANN001
    # Each byte comes well within the timeout, the whole answer far past it.
    fake._script.append(Reply(200, {"ok": True, "ts": "1.000001"}, trickle=0.5))
    started = time.monotonic()
    with pytest.raises(SlackError) as caught:
        client_for(fake.api_url).post_message(PAYLOAD)

    assert time.monotonic() - started < 4
    assert caught.value.transient and caught.value.maybe_done
