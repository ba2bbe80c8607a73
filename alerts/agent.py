"""The HTTP client of the Agent service and the JSON it exchanges (SPEC §5).

One requests Session per process, explicit connect and read timeouts. A call
either returns a checked response that PostgreSQL can store or raises
AgentTransient (5xx, connection failure, timeout: worth retrying) or
AgentRejected (4xx, a response that is not the documented shape or cannot be
stored: retrying cannot help). Callers are the analysis tasks.
"""

import json
import logging
import math
import re
import threading
import time
from typing import Any, NotRequired, TypedDict

import requests
import urllib3
from django.conf import settings

from kuberca import metrics

logger = logging.getLogger(__name__)

ANALYZE = "analyze"
SUMMARIZE = "summarize-incident"
# Connecting should never take long even when the answer may take minutes.
MAX_CONNECT_TIMEOUT = 10.0
# PostgreSQL text and jsonb hold no NUL, and no UTF-8 text holds a lone
# surrogate; JSON can carry both. They become U+FFFD, as in webhooks, so the
# analysis is kept and the spot stays visible.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Deeper JSON than this is refused: storing it as jsonb would recurse past
# Python's limit (the parser alone takes about 990 levels).
MAX_DEPTH = 500
# An answer is read in pieces of at most this many bytes, and refused past
# MAX_ANSWER_BYTES: far more than any analysis, and far less than what would
# exhaust the worker's memory or jsonb's 255 MB (the store would fail on
# every retry, each one asking the Agent again).
READ_CHUNK = 64 * 1024
MAX_ANSWER_BYTES = 32 * 1024 * 1024


class AgentAlert(TypedDict):
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    startsAt: str
    endsAt: str
    generatorURL: str
    fingerprint: str


class PreviousAnalysis(TypedDict):
    status: str
    summary: str
    detail: str
    created_at: str


class AnalyzeRequest(TypedDict):
    alert: AgentAlert
    thread_ts: str
    incident_id: str
    analysis_type: str
    previous_analysis: NotRequired[PreviousAnalysis]
    language: str


class Artifact(TypedDict):
    type: str
    query: str
    result: Any
    summary: str


class AnalyzeResponse(TypedDict):
    status: str
    thread_ts: str
    analysis: str
    analysis_summary: str
    analysis_detail: str
    context: dict[str, Any]
    artifacts: list[Artifact]


class SummaryAlert(TypedDict):
    fingerprint: str
    alert_name: str
    severity: str
    status: str
    analysis_summary: str
    analysis_detail: str
    artifacts: list[Artifact]


class SummarizeRequest(TypedDict):
    incident_id: str
    title: str
    severity: str
    fired_at: str
    resolved_at: str
    alerts: list[SummaryAlert]
    language: str


class SummarizeResponse(TypedDict):
    status: str
    title: str
    summary: str
    detail: str


class AgentError(Exception):
    """An Agent call that gave no usable answer; `reason` says why, briefly."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class AgentTransient(AgentError):
    """5xx, connection failure or timeout: the same call may work later."""


class AgentRejected(AgentError):
    """4xx or a malformed answer: repeating the same call cannot help."""


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise AgentRejected(f"malformed response: {key} is not a string")
    return value


def _artifacts(data: dict[str, Any]) -> list[Artifact]:
    raw = data.get("artifacts")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise AgentRejected("malformed response: artifacts is not a list")
    artifacts: list[Artifact] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise AgentRejected(f"malformed response: artifacts[{index}] not an object")
        artifacts.append(
            Artifact(
                type=_text(item, "type"),
                query=_text(item, "query"),
                result=item.get("result"),
                summary=_text(item, "summary"),
            )
        )
    return artifacts


def parse_analyze_response(data: Any) -> AnalyzeResponse:
    """Check an /analyze answer; absent keys become empty, wrong types raise."""
    if not isinstance(data, dict):
        raise AgentRejected("malformed response: not a JSON object")
    context = data.get("context")
    if context is None:
        context = {}
    if not isinstance(context, dict):
        raise AgentRejected("malformed response: context is not an object")
    response = AnalyzeResponse(
        status=_text(data, "status"),
        thread_ts=_text(data, "thread_ts"),
        analysis=_text(data, "analysis"),
        analysis_summary=_text(data, "analysis_summary"),
        analysis_detail=_text(data, "analysis_detail"),
        context=context,
        artifacts=_artifacts(data),
    )
    if not (
        response["analysis"].strip()
        or response["analysis_summary"].strip()
        or response["analysis_detail"].strip()
    ):
        raise AgentRejected("malformed response: no analysis text")
    return response


def parse_summarize_response(data: Any) -> SummarizeResponse:
    """Check a /summarize-incident answer; it must carry a summary or detail."""
    if not isinstance(data, dict):
        raise AgentRejected("malformed response: not a JSON object")
    response = SummarizeResponse(
        status=_text(data, "status"),
        title=_text(data, "title"),
        summary=_text(data, "summary"),
        detail=_text(data, "detail"),
    )
    if not (response["summary"].strip() or response["detail"].strip()):
        raise AgentRejected("malformed response: no summary text")
    return response


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise AgentRejected("malformed response: a number out of range")
    return value


def _no_constant(text: str) -> float:
    raise AgentRejected(f"malformed response: {text} is not a JSON number")


def _text_storable(text: str) -> str:
    return _UNSTORABLE.sub("\ufffd", text)


def _storable(data: Any) -> Any:
    """`data` with its strings and keys made storable, changed in place.

    Iterative, so any nesting the JSON parser took is walked; raises
    AgentRejected past MAX_DEPTH.
    """
    if isinstance(data, str):
        return _text_storable(data)
    pending = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise AgentRejected("malformed response: JSON nested too deeply")
        if isinstance(value, dict):
            items = list(value.items())
            value.clear()
            for key, item in items:
                if isinstance(item, str):
                    item = _text_storable(item)
                value[_text_storable(key)] = item
                pending.append((item, depth + 1))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, str):
                    value[index] = _text_storable(item)
                pending.append((item, depth + 1))
    return data


def _read_within(response: requests.Response, deadline: float) -> bytes:
    """The body of `response` (streamed), read before `deadline` (monotonic).

    requests' read timeout bounds each socket read, not the answer: a body
    trickling in a byte at a time would keep the call going past the Agent
    timeout, for ever, and past the lease recovery counts on (it would then
    run the analysis a second time). Each read here waits only what is left.
    """
    raw = response.raw
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AgentTransient("timeout: the answer took too long")
            if sock is not None:
                sock.settimeout(left)
            chunk = raw.read1(READ_CHUNK, decode_content=True)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise AgentRejected(f"answer over {MAX_ANSWER_BYTES} bytes")
            chunks.append(chunk)
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        response.close()
        if isinstance(exc, TimeoutError | urllib3.exceptions.TimeoutError):
            raise AgentTransient(f"timeout: {type(exc).__name__}") from None
        raise AgentTransient(f"connection failed: {type(exc).__name__}") from None
    except AgentError:
        response.close()
        raise
    raw.release_conn()
    return b"".join(chunks)


def _decoded(body: bytes, encoding: str | None) -> str:
    """An error answer's body as text, in its declared charset when known."""
    try:
        return body.decode(encoding or "utf-8", errors="replace")
    # A charset Python does not know, or one whose decoder refuses
    # errors="replace" (idna, undefined).
    except (LookupError, UnicodeError):
        return body.decode("utf-8", errors="replace")


class AgentClient:
    """POST JSON to the Agent at `base_url` with one Session."""

    def __init__(
        self,
        *,
        base_url: str,
        timeout: float,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = (min(MAX_CONNECT_TIMEOUT, timeout), timeout)
        self.session = session or requests.Session()
        self.session.headers.update({"Accept": "application/json"})

    def analyze(self, body: AnalyzeRequest) -> AnalyzeResponse:
        return parse_analyze_response(self._post(ANALYZE, body))

    def summarize_incident(self, body: SummarizeRequest) -> SummarizeResponse:
        return parse_summarize_response(self._post(SUMMARIZE, body))

    def _post(self, endpoint: str, body: Any) -> Any:
        url = f"{self.base_url}/{endpoint}"
        started = time.monotonic()
        try:
            response = self.session.post(
                url, json=body, timeout=self.timeout, stream=True
            )
            body = _read_within(response, started + self.timeout[1])
        except requests.Timeout as exc:
            raise AgentTransient(f"timeout: {type(exc).__name__}") from exc
        except requests.ConnectionError as exc:
            raise AgentTransient(f"connection failed: {type(exc).__name__}") from exc
        except requests.RequestException as exc:
            raise AgentTransient(f"request failed: {type(exc).__name__}") from exc
        finally:
            metrics.agent_latency.labels(endpoint=endpoint).observe(
                time.monotonic() - started
            )
        logger.debug(
            "agent answered endpoint=%s status=%s bytes=%s",
            endpoint,
            response.status_code,
            len(body),
        )
        if response.status_code >= 500:
            raise AgentTransient(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise AgentRejected(
                f"HTTP {response.status_code}:"
                f" {_text_storable(_decoded(body, response.encoding)[:300].strip())}"
            )
        try:
            # json.loads finds UTF-8, -16 or -32 in bytes itself, as RFC 8259 has.
            data = json.loads(body, parse_constant=_no_constant, parse_float=_finite)
        except RecursionError:
            raise AgentRejected("malformed response: JSON nested too deeply") from None
        except ValueError:
            raise AgentRejected("malformed response: not JSON") from None
        return _storable(data)


_clients: dict[tuple[str, float], AgentClient] = {}
_clients_lock = threading.Lock()


def get_client() -> AgentClient:
    """The process's client for the configured AGENT_URL and timeout."""
    key = (settings.AGENT_URL, float(settings.AGENT_TIMEOUT_SECONDS))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = AgentClient(base_url=key[0], timeout=key[1])
            _clients[key] = client
    return client
