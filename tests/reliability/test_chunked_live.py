"""Chunked request bodies through a live gunicorn reach kuberca whole.

A client streaming its body (`Transfer-Encoding: chunked`, no Content-Length)
gets the same answer as one that declares the length: the webhook stores the
delivery's alerts, and a login is checked rather than told its fields are
missing. kuberca/tests/test_chunked.py covers the rest in process.
"""

import json
from collections.abc import Iterator

import requests

from tests.reliability.live import Kuberca, alert, payload


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
