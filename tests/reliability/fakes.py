"""The fake Slack and fake Agent, with what the reliability scenarios need.

On top of the fakes of the notifications and alerts tests: an outage for a
while (Slack answers 429 with Retry-After, the Agent 500), a fixed delay per
answer, and a hook called before a request is answered, which a scenario uses
to SIGKILL the worker while it waits for that answer. A request whose hook
returns True is not processed (Slack posts nothing; the Agent's answer is
never read), as when a caller dies before the peer has answered.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from alerts.tests.fake_agent import ANALYZE_PATH, FakeAgent
from kuberca.testing.http import RecordedRequest, Reply
from notifications.tests.fake_slack import FakeSlack

Hook = Callable[[RecordedRequest], bool]


class OutageSlack(FakeSlack):
    """FakeSlack that can rate-limit every call until `outage_until`."""

    def __init__(self) -> None:
        super().__init__()
        self.outage_until = 0.0
        self.retry_after = 1
        self.before_answer: Hook | None = None
        self.refused = 0

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.messages.clear()
            self._script.clear()
            self.server.requests.clear()
        self.outage_until = 0.0
        self.before_answer = None
        self.refused = 0
        self.delay = 0.0

    def outage(self, seconds: float) -> None:
        self.outage_until = time.monotonic() + seconds

    def _respond(self, request: RecordedRequest) -> Reply:
        hook = self.before_answer
        if hook is not None and hook(request):
            return Reply(500, {"ok": False, "error": "caller gone"})
        if time.monotonic() < self.outage_until:
            with self._lock:
                self.refused += 1
            return Reply(
                429,
                {"ok": False, "error": "ratelimited"},
                headers={"Retry-After": str(self.retry_after)},
            )
        return super()._respond(request)


@dataclass(frozen=True)
class Answered:
    """An /analyze call the fake Agent answered with an analysis."""

    fingerprint: str
    analysis_type: str


class OutageAgent(FakeAgent):
    """FakeAgent that can answer 500 until `outage_until`, or slowly."""

    def __init__(self) -> None:
        super().__init__()
        self.outage_until = 0.0
        self.delay = 0.0
        self.before_answer: Hook | None = None
        self.answered: list[Answered] = []
        self.refused = 0
        self.cut_off: list[Answered] = []
        self._count_lock = threading.Lock()

    def reset(self) -> None:
        super().reset()
        self.outage_until = 0.0
        self.delay = 0.0
        self.before_answer = None
        self.refused = 0
        with self._count_lock:
            self.answered.clear()
            self.cut_off.clear()

    def outage(self, seconds: float) -> None:
        self.outage_until = time.monotonic() + seconds

    def analyze_calls(self) -> list[tuple[str, str]]:
        """(fingerprint, analysis_type) of every /analyze request received."""
        return [
            (body["alert"]["fingerprint"], body["analysis_type"])
            for body in self.bodies(ANALYZE_PATH)
        ]

    def _respond(self, request: RecordedRequest) -> Reply:
        hook = self.before_answer
        if hook is not None and hook(request):
            body = request.json()
            with self._count_lock:
                self.cut_off.append(
                    Answered(body["alert"]["fingerprint"], body["analysis_type"])
                )
            return Reply(500, {"detail": "caller gone"})
        if time.monotonic() < self.outage_until:
            with self._count_lock:
                self.refused += 1
            return Reply(500, {"detail": "agent down"})
        reply = super()._respond(request)
        if reply.status == 200 and request.path.startswith(ANALYZE_PATH):
            body = request.json()
            with self._count_lock:
                self.answered.append(
                    Answered(body["alert"]["fingerprint"], body["analysis_type"])
                )
        if self.delay and not reply.delay:
            reply.delay = self.delay
        return reply
