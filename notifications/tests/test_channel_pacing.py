"""Channel pacing (SPEC §4: Slack takes about one message per second per
channel): every post and edit takes a turn in its channel, whichever thread
and worker it comes from, and a 429 pushes the next turn past Retry-After."""

from datetime import timedelta

import pytest
from django.utils import timezone

from kuberca.testing.http import Reply
from notifications.models import SlackChannel
from notifications.services import PACED_FOR, channel_pause, channel_take_turn
from notifications.tests.fake_slack import CHANNEL
from notifications.tests.helpers import open_incident, unsent

pytestmark = pytest.mark.django_db


@pytest.fixture
def paced(settings, fake_slack):  # noqa: ANN001, ANN201
    """The fake Slack, with the channel pacing of production (after the
    fake_slack fixture, which turns it off)."""
    settings.SLACK_CHANNEL_INTERVAL = timedelta(seconds=1)
    return fake_slack


def limit_to_one_call_a_second(fake_slack) -> dict[str, int]:  # noqa: ANN001
    """Make the fake answer 429 (Retry-After: 1) to calls less than a second
    apart on the tests' clock, as Slack does."""
    state: dict = {"last": None, "limited": 0}
    answer = fake_slack._answer

    def limited(method, body, request):  # noqa: ANN001, ANN202
        if method.startswith("conversations."):
            return answer(method, body, request)
        now = timezone.now()
        if state["last"] is not None and now - state["last"] < timedelta(seconds=1):
            state["limited"] += 1
            return Reply(
                429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}
            )
        state["last"] = now
        return answer(method, body, request)

    fake_slack._answer = limited
    return state


def drain(clock, run_tasks, step: float = 0.25, limit: int = 2000) -> float:  # noqa: ANN001
    """Run due tasks while the clock moves on; the seconds it took."""
    began = clock.now
    for _ in range(limit):
        if not unsent():
            break
        run_tasks()
        clock.advance(step)
    assert unsent() == 0
    return (clock.now - began).total_seconds()


def test_posts_go_at_once_until_slack_answers_429(paced, clock):  # noqa: ANN001
    now = clock.now

    assert [channel_take_turn(channel=CHANNEL, now=now) for _ in range(3)] == [now] * 3


def test_after_a_429_turns_wait_for_it_then_come_an_interval_apart(paced, clock):  # noqa: ANN001
    now = clock.now
    second = timedelta(seconds=1)
    channel_pause(channel=CHANNEL, until=now + 5 * second)

    turns = [channel_take_turn(channel=CHANNEL, now=now) for _ in range(3)]

    assert turns == [now + 5 * second, now + 6 * second, now + 7 * second]
    assert channel_take_turn(channel="C0OTHER", now=now) == now
    # A minute after the last 429, posts go at once again.
    quiet = now + 5 * second + PACED_FOR + second
    assert [channel_take_turn(channel=CHANNEL, now=quiet) for _ in range(2)] == [
        quiet
    ] * 2


def test_a_pause_pushes_the_next_turn_and_never_pulls_it_back(paced, clock):  # noqa: ANN001
    now = clock.now
    channel_pause(channel=CHANNEL, until=now + timedelta(seconds=30))
    channel_pause(channel=CHANNEL, until=now + timedelta(seconds=5))

    row = SlackChannel.objects.get(pk=CHANNEL)
    assert row.next_turn_at == now + timedelta(seconds=30)
    assert row.paced_until == now + timedelta(seconds=30) + PACED_FOR
    assert channel_take_turn(channel=CHANNEL, now=now) == now + timedelta(seconds=30)


def test_a_burst_of_incidents_queues_instead_of_trading_429s(
    paced, fake_slack, signal, clock, run_tasks
):  # noqa: ANN001
    state = limit_to_one_call_a_second(fake_slack)
    for _ in range(30):
        open_incident(signal)

    took = drain(clock, run_tasks)

    posts = fake_slack.posts()
    assert len(posts) == 60  # a root and a reply each, once
    # Without pacing the 30 threads made 887 calls, 827 of them 429s.
    # Without pacing the 30 threads made 887 calls, 827 of them 429s; now the
    # first 429 paces the channel.
    assert state["limited"] <= 2, state
    assert len(fake_slack.calls) == 60 + state["limited"]
    assert 59 <= took < 75  # a message a second
    for root in fake_slack.roots():
        assert len(fake_slack.thread(root.ts)) == 1


def test_a_429_holds_every_thread_of_the_channel(
    paced, fake_slack, signal, clock, run_tasks
):  # noqa: ANN001
    fake_slack.rate_limit(times=1, retry_after=20)
    open_incident(signal)
    run_tasks()
    assert len(fake_slack.calls) == 1

    open_incident(signal)  # another thread, a moment later
    clock.advance(5)
    run_tasks()
    assert len(fake_slack.calls) == 1  # its turn is after the pause

    drain(clock, run_tasks)
    first_after = min(i for i, c in enumerate(fake_slack.calls) if c.answered == 200)
    assert first_after == 1
    assert len(fake_slack.posts()) == 4


def test_a_worker_whose_clock_runs_ahead_does_not_hold_an_unpaced_channel(paced, clock):  # noqa: ANN001
    now = clock.now
    ahead = now + timedelta(hours=1)

    assert channel_take_turn(channel=CHANNEL, now=ahead) == ahead
    assert channel_take_turn(channel=CHANNEL, now=now) == now


def test_pacing_is_the_configured_channels_whatever_id_slack_answers(
    paced, signal, clock, run_tasks
):  # noqa: ANN001
    from notifications.models import MessageKind, SlackMessage

    incident, _ = open_incident(signal)
    # Slack answered the root's post with its own id for the channel.
    SlackMessage.objects.filter(
        incident=incident, kind=MessageKind.INCIDENT_ROOT
    ).update(
        state="sent",
        ts="1700000000.000001",
        thread_ts="1700000000.000001",
        channel="C0REALID",
        posted_revision=1,
        revision=1,
    )
    paced.rate_limit(times=1, retry_after=10)

    run_tasks()  # the reply, in the thread of C0REALID: 429

    assert [c.body["channel"] for c in paced.calls] == ["C0REALID"]
    assert list(SlackChannel.objects.values_list("channel", flat=True)) == [CHANNEL]
    assert SlackChannel.objects.get(pk=CHANNEL).next_turn_at >= clock.now + timedelta(
        seconds=10
    )
