"""Chunked request bodies through a live gunicorn reach kuberca whole.

A client streaming its body (`Transfer-Encoding: chunked`, no Content-Length)
gets the same answer as one that declares the length: the webhook stores the
delivery's alerts, and a login is checked rather than told its fields are
missing. kuberca/tests/test_chunked.py covers the rest in process.
"""

import json
from collections.abc import Iterator

import pytest
import requests

from tests.reliability.live import Kuberca, alert, payload, raw_exchange


def in_pieces(body: bytes, size: int = 100) -> Iterator[bytes]:
    """A generator body: requests sends it chunked."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_a_chunked_webhook_is_stored(kuberca: Kuberca) -> None:
    body = payload([alert("chunked-1", namespace="chunked")])
    response = requests.post(
        kuberca.webhook_url,
        data=in_pieces(body),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1
    stored = kuberca.database.value(
        "SELECT count(*) FROM alerts_alert WHERE fingerprint = 'chunked-1'"
    )
    assert stored == 1


def test_a_chunked_login_is_checked(kuberca: Kuberca) -> None:
    body = json.dumps({"id": "nobody", "password": "not-the-password"}).encode()
    response = requests.post(
        f"{kuberca.url}/api/v1/auth/login",
        data=in_pieces(body, 10),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    # Read as empty, the body would be a 400 for missing fields.
    assert (response.status_code, response.json()) == (401, {"error": "unauthorized"})


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/webhook/alertmanager", "invalid payload"),
        ("/api/v1/auth/login", "bad request"),
    ],
)
@pytest.mark.parametrize(
    ("framing", "half_close"),
    [
        (b"zz\r\n{}\r\n0\r\n\r\n", False),
        (b"2\r\n{}XX0\r\n\r\n", False),
        (b"-1\r\n{}\r\n0\r\n\r\n", False),
        (b"10\r\n{}", True),
    ],
    ids=["bad-size", "no-terminator", "negative-size", "cut-short"],
)
def test_broken_chunk_framing_is_a_json_400_and_the_connection_closes(
    kuberca: Kuberca, path: str, error: str, framing: bytes, half_close: bool
) -> None:
    # Kept alive: the server, not the client, must close after the 400, and
    # answer nothing more on it. A client cut short still reads the answer.
    head = (
        f"POST {path} HTTP/1.1\r\nHost: kuberca\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    answer = raw_exchange(kuberca, head + framing, half_close=half_close)
    status_line, _, rest = answer.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert status_line == b"HTTP/1.1 400 Bad Request", answer[:500]
    assert b"content-type: application/json" in headers.lower()
    assert json.loads(body)["error"] == error
    assert "chunk" in json.loads(body)["detail"]
    assert requests.get(f"{kuberca.url}/ping", timeout=10).status_code == 200
