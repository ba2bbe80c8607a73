"""Fixtures of the notifications tests: the fake Slack, a clock, a task runner."""

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from notifications.tests.fake_slack import CHANNEL, TOKEN, FakeSlack


@pytest.fixture
def fake_slack(settings) -> Iterator[FakeSlack]:  # noqa: ANN001
    """A fake Slack that kuberca is configured to talk to."""
    fake = FakeSlack()
    settings.SLACK_BOT_TOKEN = TOKEN
    settings.SLACK_CHANNEL_ID = CHANNEL
    settings.SLACK_ENABLED = True
    settings.SLACK_API_URL = fake.api_url
    settings.SLACK_TIMEOUT_SECONDS = 5
    # Channel pacing has tests of its own (test_channel_pacing.py); elsewhere
    # a thread's calls go at once, as the tests' clock only moves when told.
    settings.SLACK_CHANNEL_INTERVAL = timedelta(0)
    settings.AGENT_ENABLED = False  # no peer but the fake Slack in these tests
    yield fake
    fake.stop()


class Clock:
    """timezone.now() under the test's control."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:  # noqa: ANN001
    """The clock, which a wait for a channel turn moves on (not the test)."""
    from notifications import services

    clock = Clock(timezone.now().replace(microsecond=0))
    monkeypatch.setattr(timezone, "now", clock)
    monkeypatch.setattr(services, "sleep", clock.advance)
    return clock


@pytest.fixture
def signal(django_capture_on_commit_callbacks):  # noqa: ANN001, ANN201
    """Send a domain signal as a committed write would (on_commit runs)."""
    from alerts.models import Alert
    from incidents.models import Incident

    def send(sig, **kwargs):  # noqa: ANN001, ANN003, ANN202
        sender = Incident if "incident_id" in kwargs else Alert
        with django_capture_on_commit_callbacks(execute=True):
            sig.send(sender=sender, **kwargs)

    return send


@pytest.fixture
def run_tasks(django_capture_on_commit_callbacks) -> Callable[[], int]:  # noqa: ANN001
    """Run the Slack tasks that are due now, and those they enqueue; count.

    Tasks of other apps (the Agent's, embeddings') are left alone.
    """

    def run(limit: int = 500) -> int:
        ran = 0
        while ran < limit:
            ready = list(
                DBTaskResult.objects.ready()
                .filter(task_path__startswith="notifications.")
                .order_by("enqueued_at")
            )
            if not ready:
                return ran
            for row in ready:
                task, result = row.task, row.task_result
                row.delete()
                with django_capture_on_commit_callbacks(execute=True):
                    task.call(*result.args, **result.kwargs)
                ran += 1
        raise AssertionError("tasks keep enqueueing each other")

    return run


@pytest.fixture(autouse=True)
def _receivers_connected() -> None:
    """Reconnect the receivers, in case a test elsewhere cleared a signal's."""
    from notifications import signals

    signals.connect()
