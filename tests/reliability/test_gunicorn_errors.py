"""Requests gunicorn refuses before kuberca sees them are answered in JSON.

SPEC §7: every error response is JSON. gunicorn checks the request line and
headers itself and would answer with an HTML page (kuberca.gunicorn_errors).
"""

import json
from http import HTTPStatus

import pytest
import requests

from tests.reliability.live import Kuberca, raw_exchange


def _answer(raw: bytes) -> tuple[bytes, dict[str, str], dict[str, str]]:
    status_line, _, rest = raw.partition(b"\r\n")
    head, _, body = rest.partition(b"\r\n\r\n")
    headers = {}
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status_line, headers, json.loads(body)


@pytest.mark.parametrize(
    ("request_bytes", "status", "detail"),
    [
        (
            b"GET /ping?" + b"x" * 9000 + b" HTTP/1.1\r\nHost: kuberca\r\n\r\n",
            414,
            "too large",
        ),
        (
            b"GET /ping HTTP/1.1\r\nHost: kuberca\r\nX-Big: "
            + b"y" * 9000
            + b"\r\n\r\n",
            431,
            "header",
        ),
        (
            b"GET /ping HTTP/1.1\r\nHost: kuberca\r\nBad Name: x\r\n\r\n",
            400,
            "Bad Name",
        ),
        (
            b"POST /webhook/alertmanager HTTP/1.1\r\nHost: kuberca\r\n"
            b"Transfer-Encoding: brotli\r\n\r\n",
            501,
            "brotli",
        ),
        (
            b"GET /ping HTTP/1.1\r\nHost: kuberca\r\nExpect: 200-ok\r\n\r\n",
            417,
            "200-ok",
        ),
    ],
    ids=[
        "long-request-line",
        "long-header",
        "bad-header-name",
        "unknown-coding",
        "unknown-expectation",
    ],
)
def test_a_request_gunicorn_refuses_gets_a_json_error(
    kuberca: Kuberca,
    request_bytes: bytes,
    status: int,
    detail: str,
) -> None:
    reason = HTTPStatus(status).phrase

    raw = raw_exchange(kuberca, request_bytes)

    status_line, headers, body = _answer(raw)
    assert status_line == f"HTTP/1.1 {status} {reason}".encode(), raw[:300]
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(raw.partition(b"\r\n\r\n")[2])
    assert body["error"] == reason.lower()
    assert detail.lower() in body["detail"].lower()
    assert requests.get(f"{kuberca.url}/ping", timeout=10).status_code == 200
