"""The Agent client against a local stand-in: answers, errors, timeouts."""

import json
import socket
import time
from collections.abc import Iterator

import pytest

from alerts import agent as agent_module
from alerts.agent import (
    MAX_DEPTH,
    AgentClient,
    AgentRejected,
    AgentTransient,
    get_client,
    parse_analyze_response,
    parse_summarize_response,
)
from alerts.tests.fake_agent import FakeAgent, canned_analysis, serve_fake_agent
from kuberca.testing.http import Reply

BODY = {
    "alert": {
        "status": "firing",
        "labels": {"alertname": "TargetDown"},
        "annotations": {},
        "startsAt": "2026-12-03T16:16:36.138228Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": "40f1d89db4e049de",
    },
    "thread_ts": "",
    "incident_id": "INC-1",
    "analysis_type": "firing",
    "language": "en",
}


@pytest.fixture(scope="module")
def agent_server() -> Iterator[FakeAgent]:
    yield from serve_fake_agent()


@pytest.fixture
def agent(agent_server: FakeAgent) -> FakeAgent:
    agent_server.reset()
    agent_server.slow_seconds = 1.0
    return agent_server


def client_for(agent: FakeAgent, timeout: float = 5) -> AgentClient:
    return AgentClient(base_url=agent.url + "/", timeout=timeout)


def test_client_returns_the_checked_analysis(agent: FakeAgent) -> None:
    response = client_for(agent).analyze(BODY)

    assert response["analysis_summary"] == "firing summary of 40f1d89db4e049de"
    assert response["artifacts"][0]["type"] == "promql"
    assert response["context"] == {"analysed": "40f1d89db4e049de"}
    assert "ignored_extra_key" not in response
    assert agent.bodies("/analyze") == [BODY]
    assert agent.invalid == []


def test_client_treats_a_server_error_as_transient(agent: FakeAgent) -> None:
    agent.then("/analyze", "server_error")

    with pytest.raises(AgentTransient, match="HTTP 500"):
        client_for(agent).analyze(BODY)


def test_client_treats_a_client_error_as_rejected_with_its_reason(
    agent: FakeAgent,
) -> None:
    agent.then("/analyze", "bad_request")

    with pytest.raises(AgentRejected, match="HTTP 400: .*labels is required"):
        client_for(agent).analyze(BODY)


def test_client_rejects_an_answer_that_is_not_json(agent: FakeAgent) -> None:
    agent.then("/analyze", "invalid_json")

    with pytest.raises(AgentRejected, match="not JSON"):
        client_for(agent).analyze(BODY)


def test_client_reads_an_error_answer_in_its_declared_charset(
    agent: FakeAgent,
) -> None:
    agent.then(
        "/analyze",
        Reply(
            422,
            "Ungültige Anfrage".encode("latin-1"),
            headers={"Content-Type": "text/plain; charset=iso-8859-1"},
        ),
    )

    with pytest.raises(AgentRejected, match="HTTP 422: Ungültige Anfrage"):
        client_for(agent).analyze(BODY)


def test_client_reads_an_error_answer_in_an_unknown_charset_as_utf8(
    agent: FakeAgent,
) -> None:
    agent.then(
        "/analyze",
        Reply(
            400,
            "labels fehlen – bitte".encode(),
            headers={"Content-Type": "text/plain; charset=x-no-such-charset"},
        ),
    )

    with pytest.raises(AgentRejected, match="HTTP 400: labels fehlen – bitte"):
        client_for(agent).analyze(BODY)


@pytest.mark.parametrize("charset", ["idna", "undefined"])
def test_client_reads_an_error_answer_in_a_charset_that_cannot_replace_as_utf8(
    agent: FakeAgent,
    charset: str,
) -> None:
    # Python knows these, but their decoders refuse errors="replace".
    agent.then(
        "/analyze",
        Reply(
            422,
            "größe fehlt".encode(),
            headers={"Content-Type": f"text/plain; charset={charset}"},
        ),
    )

    with pytest.raises(AgentRejected, match="HTTP 422: größe fehlt"):
        client_for(agent).analyze(BODY)


def test_client_reads_a_json_answer_sent_in_utf16(agent: FakeAgent) -> None:
    answer = canned_analysis(BODY) | {"analysis": "Größe geprüft"}
    agent.then("/analyze", Reply(200, json.dumps(answer).encode("utf-16")))

    assert client_for(agent).analyze(BODY)["analysis"] == "Größe geprüft"


def test_client_times_out_on_a_slow_agent(agent: FakeAgent) -> None:
    agent.then("/analyze", "slow")

    with pytest.raises(AgentTransient, match="timeout"):
        client_for(agent, timeout=0.2).analyze(BODY)


def test_client_gives_up_on_an_answer_trickling_past_its_timeout(
    agent: FakeAgent,
) -> None:
    """Each byte comes within the read timeout, the whole answer not: the
    timeout bounds the call, or recovery (which counts on it) runs the
    analysis a second time while the first still waits."""
    agent.then("/analyze", Reply(200, canned_analysis(BODY), trickle=0.05))
    started = time.monotonic()

    with pytest.raises(AgentTransient, match="timeout"):
        client_for(agent, timeout=0.5).analyze(BODY)

    assert time.monotonic() - started < 1.5


def test_client_refuses_an_answer_over_its_size_limit(
    agent: FakeAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A huge answer is refused for good once past the limit, not held in
    memory whole, then failing to store on every retry."""
    monkeypatch.setattr(agent_module, "MAX_ANSWER_BYTES", 1000)
    answer = canned_analysis(BODY) | {"context": {"pad": "x" * 2000}}
    agent.then("/analyze", Reply(200, answer))

    with pytest.raises(AgentRejected, match="answer over 1000 bytes"):
        client_for(agent).analyze(BODY)

    agent.then("/analyze", Reply(200, canned_analysis(BODY)))
    assert client_for(agent).analyze(BODY)["analysis_summary"]


def test_client_treats_a_refused_connection_as_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = AgentClient(base_url=f"http://127.0.0.1:{port}", timeout=1)

    with pytest.raises(AgentTransient, match="connection failed"):
        client.analyze(BODY)


def test_client_sets_explicit_connect_and_read_timeouts() -> None:
    assert AgentClient(base_url="http://x", timeout=240).timeout == (10.0, 240)
    assert AgentClient(base_url="http://x", timeout=3).timeout == (3, 3)


def test_get_client_keeps_one_session_per_configuration(settings) -> None:  # noqa: ANN001
    settings.AGENT_URL = "http://127.0.0.1:9"
    settings.AGENT_TIMEOUT_SECONDS = 7

    first = get_client()

    assert get_client() is first
    assert first.timeout == (7.0, 7.0)
    settings.AGENT_TIMEOUT_SECONDS = 8
    assert get_client() is not first


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ([], "not a JSON object"),
        ({"analysis": 3}, "analysis is not a string"),
        ({"analysis": "x", "context": []}, "context is not an object"),
        ({"analysis": "x", "artifacts": {}}, "artifacts is not a list"),
        ({"analysis": "x", "artifacts": ["a"]}, r"artifacts\[0\] not an object"),
        ({"status": "success", "analysis": "  "}, "no analysis text"),
    ],
)
def test_analyze_response_check_rejects_malformed_answers(
    answer: object, reason: str
) -> None:
    with pytest.raises(AgentRejected, match=reason):
        parse_analyze_response(answer)


def test_analyze_response_check_fills_absent_keys() -> None:
    response = parse_analyze_response({"analysis": "only text"})

    assert response == {
        "status": "",
        "thread_ts": "",
        "analysis": "only text",
        "analysis_summary": "",
        "analysis_detail": "",
        "context": {},
        "artifacts": [],
    }


def test_summarize_response_check_requires_a_summary() -> None:
    with pytest.raises(AgentRejected, match="no summary text"):
        parse_summarize_response({"status": "success", "title": "t"})
    assert parse_summarize_response({"summary": "s"})["title"] == ""


def test_fake_agent_lists_requests_that_break_the_contract(agent: FakeAgent) -> None:
    bad = {**BODY, "alert": {**BODY["alert"], "startsAt": "yesterday"}}
    bad.pop("language")

    with pytest.raises(AgentRejected, match="HTTP 422"):
        client_for(agent).analyze(bad)

    assert agent.invalid == ["/analyze: body.language is missing"]


def test_fake_agent_answers_a_queued_reply(agent: FakeAgent) -> None:
    agent.then("/analyze", Reply(200, canned_analysis(BODY) | {"analysis": "mine"}))

    assert client_for(agent).analyze(BODY)["analysis"] == "mine"


def _nested(depth: int) -> bytes:
    """An /analyze answer whose context nests `depth` levels in all."""
    inner = depth - 2  # the answer and its context are two levels
    return b'{"analysis": "x", "context": {"a": ' + b"[" * inner + b"]" * inner + b"}}"


def test_client_makes_nul_and_lone_surrogates_storable(agent: FakeAgent) -> None:
    agent.then(
        "/analyze",
        Reply(
            200,
            b'{"analysis": "a\\u0000b", "analysis_summary": "s\\ud800",'
            b' "context": {"k\\u0000": ["v\\u0000", {"w": "\\udc00"}]},'
            b' "artifacts": [{"type": "t", "query": "q\\u0000", "summary": "",'
            b' "result": {"r": "\\u0000"}}]}',
        ),
    )

    response = client_for(agent).analyze(BODY)

    assert response["analysis"] == "a\ufffdb"
    assert response["analysis_summary"] == "s\ufffd"
    assert response["context"] == {"k\ufffd": ["v\ufffd", {"w": "\ufffd"}]}
    assert response["artifacts"][0]["query"] == "q\ufffd"
    assert response["artifacts"][0]["result"] == {"r": "\ufffd"}


def test_client_keeps_an_answer_nested_as_deep_as_it_can_store(
    agent: FakeAgent,
) -> None:
    agent.then("/analyze", Reply(200, _nested(MAX_DEPTH)))

    assert client_for(agent).analyze(BODY)["analysis"] == "x"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (_nested(MAX_DEPTH + 1), "nested too deeply"),
        (_nested(5000), "nested too deeply"),
        (b'{"analysis": "x", "context": {"a": NaN}}', "NaN is not a JSON number"),
        (b'{"analysis": "x", "context": {"a": -Infinity}}', "not a JSON number"),
        (b'{"analysis": "x", "context": {"a": 1e999}}', "a number out of range"),
    ],
    ids=["one-too-deep", "very-deep", "nan", "infinity", "overflow"],
)
def test_client_rejects_an_answer_that_cannot_be_stored(
    agent: FakeAgent, body: bytes, reason: str
) -> None:
    agent.then("/analyze", Reply(200, body))

    with pytest.raises(AgentRejected, match=reason):
        client_for(agent).analyze(BODY)
