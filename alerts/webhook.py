"""`POST /webhook/alertmanager`: the HTTP edge of ingestion (SPEC §3, §10).

This view checks the caller (token, HMAC signature, rate limit), reads the body
up to WEBHOOK_MAX_BYTES, and hands it to alerts.services.delivery_ingest, which
stores and processes it. It never answers 429: a throttled Alertmanager must
retry, so it gets 503 with Retry-After.
"""

import base64
import hashlib
import hmac
import logging

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from alerts.services import declared_size, delivery_ingest, webhook_rate_check
from kuberca import metrics
from kuberca.addresses import client_address
from kuberca.chunked import MalformedBody, is_chunked, read_up_to
from kuberca.credentials import bearer_ok

logger = logging.getLogger(__name__)

# Seconds a client is asked to wait after a 503 for a database failure.
DATABASE_RETRY_AFTER = 5
# With WEBHOOK_HMAC_SECRET, an over-limit body is read to its end through the
# HMAC, so that only a signed sender gets its 413 recorded. Past this many
# times WEBHOOK_MAX_BYTES the reading stops: the body is refused, and not
# recorded, as its signature cannot be checked. No Alertmanager sends that
# much, and an endless stream would hold the worker.
SIGNED_READ_FACTOR = 4


class TooLargeToVerify(Exception):
    """A signed body too large to read through for its signature."""


def _token_ok(request: HttpRequest) -> bool:
    """WEBHOOK_AUTH_TOKEN as a bearer token, or as a basic-auth password."""
    token = settings.WEBHOOK_AUTH_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if bearer_ok(header, token):
        return True
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True)
    except ValueError:
        return False
    _, _, password = decoded.partition(b":")
    return hmac.compare_digest(password, token.encode())


def _sent_signature(request: HttpRequest) -> str:
    sent = request.META.get("HTTP_X_WEBHOOK_SIGNATURE", "").strip()
    if sent.lower().startswith("sha256="):
        sent = sent[7:]
    return sent.lower()


def _signature_ok(sent: str, mac: "hmac.HMAC") -> bool:
    return hmac.compare_digest(sent.encode(), mac.hexdigest().encode())


def _unauthorized(reason: str, address: str | None) -> JsonResponse:
    metrics.webhook_deliveries.labels(outcome="unauthorized").inc()
    logger.warning("webhook unauthorized reason=%s source=%s", reason, address)
    return JsonResponse({"error": "unauthorized"}, status=401)


def _read_body(
    request: HttpRequest, headers: dict[str, str], limit: int, mac: "hmac.HMAC | None"
) -> bytes:
    """Read at most `limit` + 1 bytes, around Django's own upload limit.

    With `mac`, every byte of the body goes through it, also those of an
    over-limit body past what is kept, so that its signature can be checked.
    """
    stream = request
    if is_chunked(request.META):
        # No Content-Length, so Django would read nothing; gunicorn de-chunks
        # the stream and marks its end (kuberca.chunked leaves this path alone).
        stream = request.META["wsgi.input"]
    update = mac.update if mac is not None else None
    cap = limit * SIGNED_READ_FACTOR
    if mac is not None and declared_size(headers) > cap:
        raise TooLargeToVerify(cap)
    body = read_up_to(stream, limit + 1, update)
    if mac is not None and len(body) > limit:
        seen = len(body)

        def digest(piece: bytes) -> None:
            nonlocal seen
            seen += len(piece)
            if seen > cap:
                raise TooLargeToVerify(cap)
            mac.update(piece)

        read_up_to(stream, None, digest)
    return body


def _headers(request: HttpRequest) -> dict[str, str]:
    return {name: value for name, value in request.headers.items()}


def _unavailable(detail: str, retry_after: int) -> JsonResponse:
    response = JsonResponse(
        {"error": "service unavailable", "detail": detail}, status=503
    )
    response["Retry-After"] = str(retry_after)
    return response


@csrf_exempt
def alertmanager_webhook(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        response = JsonResponse({"error": "method not allowed"}, status=405)
        response["Allow"] = "POST"
        return response
    address = client_address(request)

    # Before the rate check, so that requests without the token never use up
    # the budget of the address they share with Alertmanager (a proxy's, a
    # NAT's): a flood of them would answer Alertmanager 503 for as long as
    # it lasts.
    if settings.WEBHOOK_AUTH_TOKEN and not _token_ok(request):
        return _unauthorized("token", address)

    # Likewise for a missing signature, which needs no body to see. A wrong
    # one is found only after the body is read, so it counts.
    sent, mac = "", None
    if settings.WEBHOOK_HMAC_SECRET:
        sent = _sent_signature(request)
        if not sent:
            return _unauthorized("signature", address)
        mac = hmac.new(settings.WEBHOOK_HMAC_SECRET.encode(), digestmod=hashlib.sha256)

    if settings.WEBHOOK_RATE_LIMIT:
        try:
            wait = webhook_rate_check(client=address or "unknown")
        except DatabaseError:
            logger.warning("webhook rate check failed: database unavailable")
            return _unavailable("database unavailable", DATABASE_RETRY_AFTER)
        if wait is not None:
            metrics.webhook_deliveries.labels(outcome="throttled").inc()
            logger.warning("webhook throttled source=%s", address)
            return _unavailable("rate limit exceeded", wait)

    headers = _headers(request)
    try:
        body = _read_body(request, headers, settings.WEBHOOK_MAX_BYTES, mac)
    except MalformedBody as error:
        # Broken chunked framing: the body and its signature cannot be read.
        metrics.webhook_deliveries.labels(outcome="rejected").inc()
        logger.warning("webhook refused: %s source=%s", error, address)
        return JsonResponse(
            {"error": "invalid payload", "detail": str(error)}, status=400
        )
    except TooLargeToVerify as error:
        (cap,) = error.args
        metrics.webhook_deliveries.labels(outcome="rejected").inc()
        logger.warning(
            "webhook refused: signed body over %s bytes, not read through source=%s",
            cap,
            address,
        )
        return JsonResponse(
            {
                "error": "payload too large",
                "detail": f"body is over {cap} bytes, too large to check its signature",
            },
            status=413,
        )
    if mac is not None and not _signature_ok(sent, mac):
        return _unauthorized("signature", address)

    result = delivery_ingest(body=body, headers=headers, source_address=address)
    response = JsonResponse(result.body(), status=result.http_status)
    if result.http_status == 503:
        response["Retry-After"] = str(DATABASE_RETRY_AFTER)
    return response
