"""A stand-in for the Slack Web API on 127.0.0.1, for tests and bench/.

It speaks the methods kuberca uses (chat.postMessage, chat.update,
conversations.history and conversations.replies) to the real slack-sdk client,
records every call in order, keeps the messages it "posted" per thread, with
their metadata, and can be told to answer the next calls with a rate limit (429 and
Retry-After), a server error (500) or a Slack error (`{"ok": false, ...}`).
Point SLACK_API_URL at `fake.api_url`.
"""

import itertools
import threading
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from kuberca.testing.http import LocalHTTPServer, RecordedRequest, Reply

TOKEN = "xoxb-test-token"
CHANNEL = "C0KUBERCA"


@dataclass
class Call:
    method: str
    body: dict[str, Any]
    answered: int  # HTTP status the fake gave
    ts: str = ""  # of the message posted or edited


@dataclass
class Posted:
    ts: str
    channel: str
    thread_ts: str
    text: str
    attachments: list[dict[str, Any]]
    edits: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] | None = None

    def listed(self) -> dict[str, Any]:
        """As conversations.history lists it (with include_all_metadata)."""
        item: dict[str, Any] = {"type": "message", "ts": self.ts, "text": self.text}
        if self.thread_ts:
            item["thread_ts"] = self.thread_ts
        if self.metadata:
            item["metadata"] = self.metadata
        return item


class FakeSlack:
    """`api_url` for SLACK_API_URL; `calls`, `posts`, `messages`, `stop()`."""

    def __init__(self, *, token: str = TOKEN, delay: float = 0.0) -> None:
        self.token = token
        self.delay = delay
        self.calls: list[Call] = []
        self.messages: dict[str, Posted] = {}
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        self._lost: deque[float] = deque()
        self.server = LocalHTTPServer(self._respond)

    @property
    def api_url(self) -> str:
        return self.server.url + "/api/"

    def stop(self) -> None:
        self.server.stop()

    # Scripting the next answers.

    def rate_limit(self, times: int = 1, retry_after: int = 1) -> None:
        self._push(
            times,
            Reply(
                429,
                {"ok": False, "error": "ratelimited"},
                headers={"Retry-After": str(retry_after)},
            ),
        )

    def server_error(self, times: int = 1) -> None:
        self._push(
            times, Reply(500, b"<html>oops</html>", {"Content-Type": "text/html"})
        )

    def slack_error(self, error: str, times: int = 1) -> None:
        self._push(times, Reply(200, {"ok": False, "error": error}))

    def lose_answers(self, times: int = 1, after: float = 2.0, skip: int = 0) -> None:
        """Carry out the next calls, but answer only `after` seconds later
        (past the client's timeout, the answer is lost); the first `skip`
        calls are answered as usual."""
        with self._lock:
            self._lost.extend([0.0] * skip + [after] * times)

    def _push(self, times: int, reply: Reply) -> None:
        with self._lock:
            self._script.extend(replace(reply) for _ in range(times))

    # What was said.

    def posts(self) -> list[Call]:
        """Successful chat.postMessage calls, in order."""
        return [c for c in self.calls if c.method == "chat.postMessage" and c.ts]

    def updates(self) -> list[Call]:
        return [c for c in self.calls if c.method == "chat.update" and c.ts]

    def roots(self) -> list[Posted]:
        return [m for m in self.messages.values() if not m.thread_ts]

    def thread(self, ts: str) -> list[Posted]:
        return [m for m in self.messages.values() if m.thread_ts == ts]

    # The server side.

    def _respond(self, request: RecordedRequest) -> Reply:
        url = urlsplit(request.path)
        method = url.path.rstrip("/").rsplit("/", 1)[-1]
        try:
            body = request.json() or {}
        except ValueError:
            # slack-sdk sends the read methods' arguments as a form.
            body = dict(parse_qsl(request.body.decode(errors="replace")))
        if url.query:
            body = {**dict(parse_qsl(url.query)), **body}
        with self._lock:
            reply = self._answer(method, body, request)
            call = Call(method, body, reply.status)
            if reply.status == 200 and isinstance(reply.body, dict):
                call.ts = str(reply.body.get("ts", "")) if reply.body.get("ok") else ""
            self.calls.append(call)
            if self._lost:
                reply.delay = self._lost.popleft() or reply.delay
        if self.delay and not reply.delay:
            reply.delay = self.delay
        return reply

    def _answer(
        self, method: str, body: dict[str, Any], request: RecordedRequest
    ) -> Reply:
        if self._script:
            return self._script.popleft()
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return Reply(200, {"ok": False, "error": "invalid_auth"})
        channel = body.get("channel") or ""
        if method == "chat.postMessage":
            if not channel:
                return Reply(200, {"ok": False, "error": "channel_not_found"})
            if not body.get("text") and not body.get("attachments"):
                return Reply(200, {"ok": False, "error": "no_text"})
            ts = f"1700000000.{next(self._ts):06d}"
            self.messages[ts] = Posted(
                ts=ts,
                channel=channel,
                thread_ts=body.get("thread_ts") or "",
                text=body.get("text", ""),
                attachments=body.get("attachments") or [],
                metadata=body.get("metadata"),
            )
            return Reply(200, {"ok": True, "channel": channel, "ts": ts})
        if method in ("conversations.history", "conversations.replies"):
            # Newest first, as Slack lists them; `oldest` is recorded, not
            # applied: the tests' clock is not Slack's.
            thread = body.get("ts", "") if method == "conversations.replies" else ""
            listed = [
                m.listed()
                for m in reversed(self.messages.values())
                if m.channel == channel
                and (m.thread_ts == thread or (thread and m.ts == thread))
            ]
            return Reply(200, {"ok": True, "messages": listed, "has_more": False})
        if method == "chat.update":
            posted = self.messages.get(body.get("ts") or "")
            if posted is None:
                return Reply(200, {"ok": False, "error": "message_not_found"})
            posted.edits.append(body)
            posted.text = body.get("text", posted.text)
            posted.attachments = body.get("attachments") or posted.attachments
            return Reply(200, {"ok": True, "channel": channel, "ts": posted.ts})
        return Reply(200, {"ok": False, "error": "unknown_method"})
