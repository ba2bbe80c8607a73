"""Request-scoped middleware: a request id for logs and responses, JSON errors."""

import logging
import re
import uuid
from collections.abc import Callable

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse

from kuberca import errors
from kuberca.logging import request_id_var

logger = logging.getLogger(__name__)

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    """Take X-Request-ID when it is sane, else make one; echo it back."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = request_id
        return response


class JsonErrorMiddleware:
    """Answer 404s and unhandled errors as JSON, in DEBUG too.

    Django's handler404/handler500 are skipped when DEBUG is on, and its
    technical pages are HTML. The admin keeps its own pages; the API, the
    webhook and unknown paths never answer with HTML or a traceback.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(
        self, request: HttpRequest, exception: Exception
    ) -> HttpResponse | None:
        if request.path.startswith("/admin/"):
            return None
        if isinstance(exception, Http404):
            return errors.json_404(request, exception)
        if isinstance(exception, RequestDataTooBig):
            logger.warning("request body too large path=%s", request.path)
            return JsonResponse(
                {"error": "payload too large", "detail": str(exception)}, status=413
            )
        if isinstance(exception, SuspiciousOperation):
            # What Django itself answers 400 (a bad Host, too many fields).
            logger.warning(
                "suspicious request path=%s error=%s",
                request.path,
                type(exception).__name__,
            )
            return errors.json_400(request, exception)
        logger.error(
            "unhandled error method=%s path=%s",
            request.method,
            request.path,
            exc_info=exception,
        )
        return errors.json_500(request)
