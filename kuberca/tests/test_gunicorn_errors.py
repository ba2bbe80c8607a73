"""kuberca.gunicorn_errors: the JSON answer written for gunicorn's refusals.

tests/reliability/test_gunicorn_errors.py drives it through a live gunicorn.
"""

import json
import socket

from kuberca.gunicorn_errors import DETAIL_MAX_CHARS, write_json_error


def _written(status: int, reason: str, mesg: str) -> tuple[bytes, dict]:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        write_json_error(ours, status, reason, mesg)
        ours.shutdown(socket.SHUT_WR)
        raw = b""
        while piece := theirs.recv(65536):
            raw += piece
    head, _, body = raw.partition(b"\r\n\r\n")
    assert f"Content-Length: {len(body)}".encode() in head
    return head.split(b"\r\n")[0], json.loads(body)


def test_an_answer_without_a_message_has_no_detail() -> None:
    status_line, body = _written(500, "Internal Server Error", "")

    assert status_line == b"HTTP/1.1 500 Internal Server Error"
    assert body == {"error": "internal server error"}


def test_a_long_message_is_cut() -> None:
    _, body = _written(400, "Bad Request", "Invalid Request Line '" + "x" * 5000)

    assert len(body["detail"]) == DETAIL_MAX_CHARS


def test_a_status_without_a_standard_reason_keeps_gunicorns() -> None:
    status_line, body = _written(599, "Odd Status", "why")

    assert status_line == b"HTTP/1.1 599 Odd Status"
    assert body == {"error": "odd status", "detail": "why"}
