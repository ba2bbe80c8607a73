"""Give Django a length for request bodies sent chunked.

A client may send a body with `Transfer-Encoding: chunked` and no
Content-Length. gunicorn de-chunks it and passes no CONTENT_LENGTH, and Django
then reads the body as empty: a chunked PUT would answer success and change
nothing, a chunked login would be told its fields are missing. This WSGI
wrapper reads the body of such a POST, PUT or PATCH first, up to one byte past
DATA_UPLOAD_MAX_MEMORY_SIZE, and tells Django its length; a longer body is
then refused by Django's own limit with the usual 413. A body whose chunked
framing is broken or that stops before its last chunk (the client
half-closed) is a JSON 400 (`MalformedBody`), not gunicorn's HTML page, no
answer or a 500; gunicorn then closes the connection, since where the next
request starts is unknown.

The webhook reads its body itself (`alerts.webhook`), after the caller's
token and rate are checked, and signs and counts every byte: its path is
left alone.
"""

import io
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from gunicorn.http.errors import NoMoreData, ParseException

logger = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_READ_CHUNK = 256 * 1024


def is_chunked(environ: dict[str, Any]) -> bool:
    """Whether the request body came chunked (gunicorn refuses it with a
    Content-Length too) and the server marks where it ends."""
    encoding = environ.get("HTTP_TRANSFER_ENCODING", "")
    return "chunked" in encoding.lower() and bool(environ.get("wsgi.input_terminated"))


class MalformedBody(Exception):
    """The server could not de-chunk the request body: its framing is broken,
    or it ended before its last chunk."""


def read_up_to(
    stream: Any, limit: int | None, each: Callable[[bytes], Any] | None = None
) -> bytes:
    """Read `stream` to its end or `limit` bytes; `each` sees every piece.

    With `limit` None the pieces go to `each` and are not kept. Raises
    MalformedBody when the server finds the chunked framing broken or cut short.
    """
    pieces = []
    remaining = limit
    while remaining is None or remaining > 0:
        size = _READ_CHUNK if remaining is None else min(_READ_CHUNK, remaining)
        try:
            piece = stream.read(size)
        except ParseException as error:
            raise MalformedBody(f"malformed chunked body: {error}") from error
        except NoMoreData as error:
            # Raised by the chunked reader only: a short Content-Length body
            # just ends.
            raise MalformedBody(
                "malformed chunked body: it ended before its last chunk"
            ) from error
        if not piece:
            break
        if each is not None:
            each(piece)
        if remaining is not None:
            pieces.append(piece)
            remaining -= len(piece)
    return b"".join(pieces)


# Paths whose views read a chunked body from `wsgi.input` themselves.
READS_ITS_OWN_BODY = ("/webhook/",)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def with_chunked_bodies(app: WSGIApp) -> WSGIApp:
    """Wrap a WSGI application so it sees a CONTENT_LENGTH for chunked bodies."""

    def application(environ: dict[str, Any], start_response: Callable[..., Any]):  # noqa: ANN202
        if (
            is_chunked(environ)
            and not environ.get("CONTENT_LENGTH")
            and environ.get("REQUEST_METHOD") in _BODY_METHODS
            and not environ.get("PATH_INFO", "").startswith(READS_ITS_OWN_BODY)
        ):
            try:
                body = read_up_to(
                    environ["wsgi.input"], settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1
                )
            except MalformedBody as error:
                return _malformed(environ, start_response, error)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return app(environ, start_response)

    return application


def _malformed(
    environ: dict[str, Any], start_response: Callable[..., Any], error: MalformedBody
) -> list[bytes]:
    """A JSON 400 for a body the server could not de-chunk, before Django."""
    logger.warning(
        "request refused: %s method=%s path=%s",
        error,
        environ.get("REQUEST_METHOD"),
        environ.get("PATH_INFO", ""),
    )
    body = json.dumps({"error": "bad request", "detail": str(error)}).encode()
    start_response(
        "400 Bad Request",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]
