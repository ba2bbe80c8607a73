"""A stand-in Agent on 127.0.0.1 for tests: checks requests, scripts answers.

FakeAgent serves /analyze and /summarize-incident on a LocalHTTPServer. Every
request body is checked against the request shape of SPEC §5 (required keys
and their types); a bad one is answered 422 and listed in `.invalid`, so a test
asserts `agent.invalid == []`. Answers are canned analyses unless a test
queues others per endpoint: "ok", "server_error" (500), "bad_request" (400),
"slow" (answers after `slow_seconds`), "invalid_json", or any Reply.
Reliability tests can start one on its own: `FakeAgent()`, then `.stop()`.
"""

import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from kuberca.testing.http import LocalHTTPServer, RecordedRequest, Reply, Responder

ANALYZE_PATH = "/analyze"
SUMMARIZE_PATH = "/summarize-incident"
SECOND_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$")

Behaviour = str | Reply


def _check_fields(
    value: Any, where: str, fields: dict[str, type | tuple[type, ...]]
) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where} is not an object"]
    problems = []
    for key, kind in fields.items():
        if key not in value:
            problems.append(f"{where}.{key} is missing")
        elif not isinstance(value[key], kind):
            problems.append(f"{where}.{key} has type {type(value[key]).__name__}")
    return problems


def _check_artifacts(value: Any, where: str) -> list[str]:
    if not isinstance(value, list):
        return [f"{where} is not a list"]
    problems = []
    for index, item in enumerate(value):
        problems += _check_fields(
            item,
            f"{where}[{index}]",
            {"type": str, "query": str, "summary": str, "result": object},
        )
    return problems


def check_analyze_body(body: Any) -> list[str]:
    """Problems with an /analyze body; [] when it has the shape of SPEC §5.1."""
    problems = _check_fields(
        body,
        "body",
        {
            "alert": dict,
            "thread_ts": str,
            "incident_id": str,
            "analysis_type": str,
            "language": str,
        },
    )
    if problems:
        return problems
    alert = body["alert"]
    problems += _check_fields(
        alert,
        "alert",
        {
            "status": str,
            "labels": dict,
            "annotations": dict,
            "startsAt": str,
            "endsAt": str,
            "generatorURL": str,
            "fingerprint": str,
        },
    )
    for key in ("startsAt", "endsAt"):
        if isinstance(alert.get(key), str) and not RFC3339.match(alert[key]):
            problems.append(f"alert.{key} is not RFC 3339: {alert[key]!r}")
    if body["analysis_type"] not in ("firing", "resolved"):
        problems.append(f"analysis_type is {body['analysis_type']!r}")
    if body["language"] not in ("en", "ko"):
        problems.append(f"language is {body['language']!r}")
    if "previous_analysis" in body:
        if body["analysis_type"] != "resolved":
            problems.append("previous_analysis sent with a firing analysis")
        problems += _check_fields(
            body["previous_analysis"],
            "previous_analysis",
            {"status": str, "summary": str, "detail": str, "created_at": str},
        )
    return problems


def check_summarize_body(body: Any) -> list[str]:
    """Problems with a /summarize-incident body (SPEC §5.2); [] when valid."""
    problems = _check_fields(
        body,
        "body",
        {
            "incident_id": str,
            "title": str,
            "severity": str,
            "fired_at": str,
            "resolved_at": str,
            "alerts": list,
            "language": str,
        },
    )
    if problems:
        return problems
    if not SECOND_TIME.match(body["fired_at"]):
        problems.append(f"fired_at is {body['fired_at']!r}")
    if body["resolved_at"] and not SECOND_TIME.match(body["resolved_at"]):
        problems.append(f"resolved_at is {body['resolved_at']!r}")
    for index, alert in enumerate(body["alerts"]):
        where = f"alerts[{index}]"
        problems += _check_fields(
            alert,
            where,
            {
                "fingerprint": str,
                "alert_name": str,
                "severity": str,
                "status": str,
                "analysis_summary": str,
                "analysis_detail": str,
                "artifacts": list,
            },
        )
        if isinstance(alert, dict) and isinstance(alert.get("artifacts"), list):
            problems += _check_artifacts(alert["artifacts"], f"{where}.artifacts")
    return problems


def canned_analysis(body: dict[str, Any]) -> dict[str, Any]:
    fingerprint = body["alert"]["fingerprint"]
    kind = body["analysis_type"]
    return {
        "status": "success",
        "thread_ts": body["thread_ts"],
        "analysis": f"**Root cause** of {fingerprint} ({kind}): `cart` OOMKilled.",
        "analysis_summary": f"{kind} summary of {fingerprint}",
        "analysis_detail": f"{kind} detail of {fingerprint}",
        "context": {"analysed": fingerprint},
        "artifacts": [
            {
                "type": "promql",
                "query": f'up{{fingerprint="{fingerprint}"}}',
                "result": {"value": [1, "0"]},
                "summary": "target down",
            }
        ],
        "ignored_extra_key": True,
    }


def canned_summary(body: dict[str, Any], title: str) -> dict[str, Any]:
    return {
        "status": "success",
        "title": title,
        "summary": f"Final summary of {body['incident_id']}",
        "detail": f"{len(body['alerts'])} alerts analysed",
    }


class FakeAgent:
    """The Agent, scripted per endpoint; `.url` for AGENT_URL."""

    def __init__(
        self,
        start: Callable[[Responder], LocalHTTPServer] = LocalHTTPServer,
        *,
        summary_title: str = "Cart pods crash-looping after a bad deploy",
        slow_seconds: float = 2.0,
    ) -> None:
        self.summary_title = self._default_title = summary_title
        self.slow_seconds = self._default_slow = slow_seconds
        self.invalid: list[str] = []
        self._plans: dict[str, deque[Behaviour]] = {
            ANALYZE_PATH: deque(),
            SUMMARIZE_PATH: deque(),
        }
        self._lock = threading.Lock()
        self.server = start(self._respond)

    @property
    def url(self) -> str:
        return self.server.url

    def then(self, path: str, *behaviours: Behaviour) -> "FakeAgent":
        """Answer the next requests to `path` with `behaviours`, in order."""
        with self._lock:
            self._plans[path].extend(behaviours)
        return self

    def bodies(self, path: str) -> list[Any]:
        return [request.json() for request in self.server.requests_to(path)]

    def reset(self) -> None:
        """Forget requests, problems and queued answers (a server shared by
        several tests)."""
        self.summary_title = self._default_title
        self.slow_seconds = self._default_slow
        with self._lock:
            for plan in self._plans.values():
                plan.clear()
            self.invalid.clear()
            self.server.requests.clear()

    def stop(self) -> None:
        self.server.stop()

    def _respond(self, request: RecordedRequest) -> Reply:
        path = request.path.split("?")[0]
        if request.method != "POST" or path not in self._plans:
            return Reply(404, {"detail": "not found"})
        try:
            body = request.json()
        except ValueError:
            self.invalid.append(f"{path}: body is not JSON")
            return Reply(422, {"detail": "body is not JSON"})
        checker = check_analyze_body if path == ANALYZE_PATH else check_summarize_body
        problems = checker(body)
        if problems:
            self.invalid.extend(f"{path}: {p}" for p in problems)
            return Reply(422, {"detail": problems})
        with self._lock:
            plan = self._plans[path]
            behaviour = plan.popleft() if plan else "ok"
        if isinstance(behaviour, Reply):
            return behaviour
        if behaviour == "server_error":
            return Reply(500, {"detail": "agent exploded"})
        if behaviour == "bad_request":
            return Reply(400, {"detail": "alert.labels is required"})
        if behaviour == "invalid_json":
            return Reply(200, b"<html>not json</html>")
        answer = (
            canned_analysis(body)
            if path == ANALYZE_PATH
            else canned_summary(body, self.summary_title)
        )
        if behaviour == "slow":
            return Reply(200, answer, delay=self.slow_seconds)
        if behaviour != "ok":
            raise ValueError(f"unknown fake agent behaviour {behaviour!r}")
        return Reply(200, answer)


def run_queued_tasks(
    *, prefix: str = "alerts.analysis_tasks.", delayed: bool = True, limit: int = 200
) -> list[tuple[str, Any]]:
    """Run the queued tasks whose path starts with `prefix`, as a worker would.

    Tasks that are due run first, in the worker's order; with `delayed`, a
    task waiting for its run_after (a retry) runs next, as if its time came.
    Returns (task name, return value) in order; an exception propagates.
    """
    from django_tasks_db.models import DBTaskResult

    ran: list[tuple[str, Any]] = []
    for _ in range(limit):
        queued = DBTaskResult.objects.filter(
            status="READY", task_path__startswith=prefix
        )
        row = queued.ready().first()
        if row is None and delayed:
            row = queued.order_by("run_after", "enqueued_at").first()
        if row is None:
            return ran
        DBTaskResult.objects.filter(pk=row.pk).update(status="SUCCESSFUL")
        args = row.args_kwargs
        value = row.task.call(*args["args"], **args["kwargs"])
        ran.append((row.task_path.rsplit(".", 1)[-1], value))
    raise AssertionError(f"more than {limit} tasks ran: {ran[-5:]}")


def serve_fake_agent() -> Iterator[FakeAgent]:
    """Body of a module-scoped fixture: one FakeAgent for a whole test module,
    since a server takes half a second to stop; `reset()` it in each test."""
    agent = FakeAgent()
    yield agent
    agent.stop()


def point_settings_at(settings: Any, agent: FakeAgent, *, timeout: float = 5) -> None:
    """Configure pytest-django's `settings` to use `agent` as AGENT_URL."""
    settings.AGENT_URL = agent.url
    settings.AGENT_ENABLED = True
    settings.AGENT_TIMEOUT_SECONDS = timeout
    settings.AGENT_RETRY_MAX_ATTEMPTS = 3
    settings.LANGUAGE = "en"
