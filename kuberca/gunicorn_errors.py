"""gunicorn's own refusals answered in JSON, like every other kuberca error.

gunicorn refuses some requests before kuberca sees them: a request line over
its limit (414), headers over theirs (431), a malformed request line, method
or header (400), a transfer coding it does not know (501). It writes those
answers as an HTML page, while SPEC §7 wants every error response in JSON.
It writes them all through `gunicorn.util.write_error`, looked up on the
module at each call; `install()`, run by the configuration in the master
before it forks the workers, puts a writer of the same answer in JSON there.
gunicorn is pinned; tests/reliability/test_gunicorn_errors.py fails if an
upgrade stops going through that function.
"""

import json
from http import HTTPStatus
from typing import Any

from gunicorn import util

# gunicorn's messages quote the refused request line or header: bounded.
DETAIL_MAX_CHARS = 1000


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """Send the status with `{"error", "detail"}`; gunicorn then closes.

    The reason is the status code's own: gunicorn gives its 501 for an
    unknown transfer coding the reason "Bad Request".
    """
    try:
        reason = HTTPStatus(status_int).phrase
    except ValueError:
        pass
    answer: dict[str, str] = {"error": reason.lower()}
    if mesg:
        answer["detail"] = mesg[:DETAIL_MAX_CHARS]
    body = json.dumps(answer).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


def install() -> None:
    util.write_error = write_json_error
