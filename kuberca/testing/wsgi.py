"""Call kuberca's WSGI application in process, as gunicorn would.

Django's test client builds its own request and skips `kuberca.wsgi`; these
tests need what gunicorn hands over: a raw environ, a chunked body with no
CONTENT_LENGTH, `wsgi.input_terminated`.
"""

import io
from dataclasses import dataclass
from typing import Any

from django.core import signals
from django.db import close_old_connections


@dataclass
class WSGIAnswer:
    status: int
    headers: dict[str, str]
    body: bytes


def call(method: str, path: str, body: bytes = b"", **environ: Any) -> WSGIAnswer:
    """Send one request through `kuberca.wsgi.application`; `environ` is added."""
    from kuberca.wsgi import application

    request = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
        **environ,
    }
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> None:
        started.append((status, headers))

    # As Django's test client does: the test's connection stays open.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        chunks = application(request, start_response)
        try:
            content = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    status, headers = started[0]
    return WSGIAnswer(int(status.split()[0]), dict(headers), content)


def chunked(**environ: Any) -> dict[str, Any]:
    """The environ gunicorn passes for a body sent chunked: no CONTENT_LENGTH."""
    return {
        "HTTP_TRANSFER_ENCODING": "chunked",
        "wsgi.input_terminated": True,
        **environ,
    }
