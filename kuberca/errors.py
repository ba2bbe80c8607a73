"""Domain errors and the one place that turns errors into JSON responses.

Services raise a DomainError subclass; the DRF exception handler and the Django
error handlers below render every failure as JSON in the shapes of SPEC §7,
never as an HTML page, a stack trace or a raw database message.
"""

import logging
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import (
    DisallowedHost,
    PermissionDenied,
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.db import DatabaseError, DataError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.csrf import csrf_failure as django_csrf_failure
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from kuberca.transactions import conflicted, sqlstate

logger = logging.getLogger(__name__)


class DomainError(Exception):
    """A broken business rule, with a stable machine code and an HTTP status."""

    code = "error"
    http_status = status.HTTP_400_BAD_REQUEST
    default_message = "request could not be completed"

    def __init__(self, message: str | None = None, **context: Any) -> None:
        self.message = message or self.default_message
        self.context = context
        super().__init__(self.message)


class NotFound(DomainError):
    code = "not found"
    http_status = status.HTTP_404_NOT_FOUND
    default_message = "not found"


class Conflict(DomainError):
    code = "conflict"
    http_status = status.HTTP_409_CONFLICT
    default_message = "conflict"


class InvalidInput(DomainError):
    code = "invalid input"
    http_status = status.HTTP_400_BAD_REQUEST
    default_message = "invalid input"


class Disabled(DomainError):
    code = "disabled"
    http_status = status.HTTP_403_FORBIDDEN
    default_message = "this feature is disabled"


def _detail_text(detail: Any) -> str:
    if isinstance(detail, dict):
        return "; ".join(
            f"{key}: {_detail_text(value)}" for key, value in detail.items()
        )
    if isinstance(detail, list):
        return "; ".join(_detail_text(item) for item in detail)
    return str(detail)


class DetailRouteEnvelope:
    """For a viewset whose detail routes answer errors in the envelope.

    By the route, not the action: a method the route does not take has no
    action, and a list route answers it without the envelope too. The detail
    routes are those with the viewset's `lookup_field` in the URL.
    """

    lookup_field: str

    @property
    def error_envelope(self) -> bool:
        return self.lookup_field in getattr(self, "kwargs", {})

    def initial(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        """After authentication: an id holding a NUL character is unknown.

        No stored id holds one, and PostgreSQL refuses it in a query (a
        DataError, answered 400), where SPEC §7 answers an unknown id 404.
        """
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        if "\x00" in kwargs.get(self.lookup_field, ""):
            raise Http404


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Render DRF, domain and database errors as `{"error": ...}` JSON.

    Views that answer in the `{"status": "error", "message", "error"}` envelope
    (incident and alert detail routes, DetailRouteEnvelope) have a true
    `error_envelope`.
    """
    view = context.get("view")
    envelope = getattr(view, "error_envelope", False)
    headers: dict[str, str] = {}

    if isinstance(exc, DomainError):
        code, message, http_status = exc.code, exc.message, exc.http_status
    elif isinstance(exc, Http404):
        code, message, http_status = "not found", "not found", 404
    elif isinstance(exc, PermissionDenied):
        code, message, http_status = "forbidden", "forbidden", 403
    elif isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        # DRF sets auth_header from the view's authenticator (`Bearer ...`).
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        return Response({"error": "unauthorized"}, status=401, headers=headers)
    elif isinstance(exc, exceptions.ParseError):
        code, message, http_status = "invalid request", _detail_text(exc.detail), 400
    elif isinstance(exc, exceptions.Throttled):
        code, message, http_status = "too many requests", "too many requests", 429
        if exc.wait is not None:
            headers["Retry-After"] = str(max(1, int(exc.wait + 0.999)))
    elif isinstance(exc, exceptions.APIException):
        response = exception_handler(exc, context)
        http_status = response.status_code if response is not None else exc.status_code
        code = (
            exc.default_code.replace("_", " ")
            if isinstance(exc.default_code, str)
            else "error"
        )
        message = _detail_text(exc.detail)
        if response is not None:
            headers.update(
                {k: v for k, v in response.items() if k in ("Allow", "Retry-After")}
            )
    elif isinstance(exc, RequestDataTooBig):
        # Raised by request.data inside the view: answered here, a detail
        # route keeps its envelope (SPEC §7), which json_413 would not.
        logger.warning("request body too large path=%s", context["request"].path)
        code, message, http_status = "payload too large", _too_large_detail(), 413
    elif isinstance(exc, DataError):
        # SQLSTATE class 22: a value in the request the database cannot store
        # or compare (a NUL character, a number out of range). Retrying the
        # same request cannot help, so it is the caller's 400, not a 503.
        logger.warning(
            "database refused a value view=%s error=%s",
            type(view).__name__,
            str(exc).splitlines()[0][:200] if str(exc) else "",
        )
        code, message, http_status = (
            "invalid input",
            "a value is out of range or holds a character that cannot be stored "
            "(such as NUL)",
            400,
        )
    elif isinstance(exc, DatabaseError) and conflicted(exc):
        # Still conflicting after kuberca.transactions' retries: the database
        # is up but busy with the same rows; the same request will do soon.
        logger.warning(
            "database conflict in api view view=%s sqlstate=%s",
            type(view).__name__,
            sqlstate(exc),
        )
        code, message, http_status = (
            "service unavailable",
            "database busy with the same rows; try again",
            503,
        )
        headers["Retry-After"] = "1"
    elif isinstance(exc, DatabaseError):
        logger.error(
            "database error in api view view=%s", type(view).__name__, exc_info=exc
        )
        code, message, http_status = "service unavailable", "database unavailable", 503
    else:
        return None  # Django's handler500 answers, as JSON

    if envelope:
        body: dict[str, Any] = {"status": "error", "message": message, "error": code}
    else:
        body = {"error": code}
        if message != code:
            body["detail"] = message
    return Response(body, status=http_status, headers=headers)


def serializer_errors_text(errors: Mapping[str, Any]) -> str:
    """A serializer's errors in one line: `field: message; other: message`."""
    return "; ".join(
        f"{name}: {' '.join(str(m) for m in messages)}"
        for name, messages in errors.items()
    )


def json_404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse({"error": "not found", "path": request.path}, status=404)


def json_500(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"error": "internal error"}, status=500)


# What Django's 400s (its SuspiciousOperations) tell the caller, in words of
# our own: Django's messages echo the request back and name settings.
_SUSPICIOUS_DETAILS = (
    (DisallowedHost, "the Host header is malformed or not a host this server answers"),
    (TooManyFieldsSent, "the form has too many fields"),
    (TooManyFilesSent, "the form has too many files"),
)


def json_400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """Django's 400 (a SuspiciousOperation: a bad Host, too many fields), as
    JSON saying which part of the request was refused."""
    detail = next(
        (text for kind, text in _SUSPICIOUS_DETAILS if isinstance(exception, kind)),
        "the request was refused as malformed",
    )
    return JsonResponse({"error": "bad request", "detail": detail}, status=400)


def _too_large_detail() -> str:
    # Django's own message names its setting and not the size.
    return f"the body is over the limit of {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes"


def json_413(request: HttpRequest, exception: Exception) -> JsonResponse:
    logger.warning("request body too large path=%s", request.path)
    return JsonResponse(
        {"error": "payload too large", "detail": _too_large_detail()}, status=413
    )


def json_403(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse({"error": "forbidden"}, status=403)


def json_405(request: HttpRequest, allowed: list[str]) -> JsonResponse:
    """The answer to a method the view does not take, shaped like DRF's."""
    response = JsonResponse(
        {
            "error": "method not allowed",
            "detail": f'Method "{request.method}" not allowed.',
        },
        status=405,
    )
    response["Allow"] = ", ".join(allowed)
    return response


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: JSON like every error, except in the admin.

    The admin is a browser form; Django's page tells the operator to allow
    cookies or reload, which a JSON body would not.
    """
    if request.path.startswith("/admin/"):
        return django_csrf_failure(request, reason)
    return JsonResponse(
        {"error": "forbidden", "detail": f"CSRF verification failed: {reason}"},
        status=403,
    )
