"""Request-scoped middleware: a request id, bodiless HEAD answers, bad Host and NUL
refusal, JSON errors."""

import logging
import re
import uuid
from collections.abc import Callable

from django.core.exceptions import (
    DisallowedHost,
    RequestDataTooBig,
    SuspiciousOperation,
)
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, QueryDict

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


class HeadWithoutBodyMiddleware:
    """Answer HEAD with the headers of GET and no body.

    Django leaves that to the server. gunicorn drops the body too, but logs
    a warning for each such response, which an uptime check that sends HEAD
    every few seconds turns into noise.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.method == "HEAD" and not response.streaming:
            if not response.has_header("Content-Length"):
                response["Content-Length"] = str(len(response.content))
            response.content = b""
        return response


class RejectBadHostMiddleware:
    """Answer a JSON 400 to a Host header Django refuses, before anything asks.

    CommonMiddleware (and SecurityMiddleware's HTTPS redirect) read
    request.get_host(); its DisallowedHost, raised in a middleware, becomes
    Django's own 400, which with DEBUG on (`make run`) is the HTML debug page
    with a traceback. Views ask for the host too (a list's Link header).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            request.get_host()
        except DisallowedHost as error:
            logger.warning("request refused: bad Host header method=%s", request.method)
            return errors.json_400(request, error)
        return self.get_response(request)


class RejectNulMiddleware:
    """Answer 400 to a request whose path, query, cookies or form hold a NUL.

    PostgreSQL text can never hold NUL, so such a value could only end as a
    DataError in some query (an admin filter, a change page, an action's
    selection, the session lookup). The API checks and names its own
    parameters, and the webhook keeps every delivery as received, so both are
    left to their views. Only form bodies are read here, never JSON.
    """

    exempt = ("/api/", "/webhook/")
    form_types = ("application/x-www-form-urlencoded", "multipart/form-data")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(self.exempt):
            try:
                where = self._nul_in(request)
            except RequestDataTooBig as error:
                return errors.json_413(request, error)
            except SuspiciousOperation as error:
                # Too many form fields: raised here, Django would answer its
                # HTML debug page when DEBUG is on.
                return errors.json_400(request, error)
            if where:
                logger.warning(
                    "request refused: NUL character method=%s where=%s",
                    request.method,
                    where,
                )
                return JsonResponse(
                    {"error": "bad request", "detail": f"NUL character in the {where}"},
                    status=400,
                )
        return self.get_response(request)

    def _nul_in(self, request: HttpRequest) -> str:
        if "\x00" in request.path:
            return "path"
        if _holds_nul(request.GET):
            return "query string"
        if any("\x00" in value for value in request.COOKIES.values()):
            return "cookies"
        if (
            request.method == "POST"
            and request.content_type in self.form_types
            and _holds_nul(request.POST)
        ):
            return "form data"
        return ""


def _holds_nul(data: QueryDict) -> bool:
    return any(
        "\x00" in key or any("\x00" in value for value in values)
        for key, values in data.lists()
    )


class JsonErrorMiddleware:
    """Answer 404s and unhandled errors as JSON, in DEBUG too.

    Django's handler404/handler500 are skipped when DEBUG is on, and its
    technical pages are HTML. The admin keeps its own pages but for a 400;
    the API, the webhook and unknown paths never answer with HTML or a
    traceback. A path that does not start with a slash (`OPTIONS *`, the
    asterisk form) cannot reach the catch-all route, since every route is
    under `/`: it is answered here.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith("/"):
            return errors.json_404(request)
        return self.get_response(request)

    def process_exception(
        self, request: HttpRequest, exception: Exception
    ) -> HttpResponse | None:
        # The admin keeps its own pages, except for what Django refuses as
        # suspicious (a lookup or `_to_field` no list offers): with DEBUG on
        # that would be the debug page, with a traceback, for a query string.
        if request.path.startswith("/admin/") and not isinstance(
            exception, SuspiciousOperation
        ):
            return None
        if isinstance(exception, Http404):
            return errors.json_404(request, exception)
        if isinstance(exception, RequestDataTooBig):
            return errors.json_413(request, exception)
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
