"""The /api/v1/auth endpoints (SPEC §7): thin views over accounts.services.

The access token travels in the JSON body; the refresh token only in the
HttpOnly cookie AUTH_COOKIE_NAME. Every view but /me is public and ignores any
Authorization header, so a stale access token never blocks a login or a
refresh. None of them uses session authentication, so none needs a CSRF token.
"""

import io
from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.parsers import get_encoding
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.serializers import (
    AuthErrorSerializer,
    ConfigSerializer,
    CredentialsSerializer,
    LogoutSerializer,
    MeSerializer,
    TokenSerializer,
)
from accounts.throttling import LoginThrottled
from kuberca.addresses import client_address
from kuberca.errors import InvalidInput, serializer_errors_text
from kuberca.parsers import SafeJSONParser

_COOKIE_DOC = (
    f"`{settings.AUTH_COOKIE_NAME}`: the refresh token, HttpOnly, Max-Age = "
    "refresh lifetime, with the AUTH_COOKIE_* Secure, SameSite, Path and Domain."
)
_SET_COOKIE = OpenApiParameter(
    "Set-Cookie",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=[200],
    description=_COOKIE_DOC,
)
_REFRESH_COOKIE = OpenApiParameter(
    settings.AUTH_COOKIE_NAME,
    OpenApiTypes.STR,
    OpenApiParameter.COOKIE,
    required=False,
    description="The refresh token set by login, register or refresh.",
)


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(AuthErrorSerializer, description=description)


_BAD_BODY = _error(
    "`invalid request` (not a JSON object) or `invalid input` (id 3-64 and "
    "password 8-128 characters after trimming)."
)
_THROTTLED = _error("`too many requests`: too many failures; see Retry-After.")
_SIGNUP_THROTTLED = _error(
    "`too many requests`: too many sign-ups and failed logins from this client; "
    "see Retry-After."
)


# The JSON values a credentials body may hold, counted by the characters that
# open or separate them (also inside strings, so a password of commas is
# counted). Credentials are two strings in one object: a handful.
CREDENTIALS_MAX_VALUES = 1000


class CredentialsParser(SafeJSONParser):
    """The JSON parser of the public auth views: a body of many values is
    refused unparsed.

    These views answer anyone, and Python objects take far more memory than
    their JSON: ten MiB of `{}` parse into some 300 MiB, enough for a few
    requests to get a web pod killed. A long string costs only its length.
    The text is counted as decoded, so no charset (UTF-7, EBCDIC) hides the
    marks.
    """

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: dict[str, Any] | None = None,
    ) -> Any:
        context = parser_context or {}
        body = stream.read() if stream is not None else b""
        try:
            text = body.decode(get_encoding(context))
        except UnicodeError as error:
            raise exceptions.ParseError(f"JSON parse error - {error}") from None
        if sum(text.count(mark) for mark in ",:[{") > CREDENTIALS_MAX_VALUES:
            raise exceptions.ParseError(
                "JSON parse error - far more values than a login id and password"
            )
        return super().parse(
            io.BytesIO(text.encode("utf-8", "surrogatepass")),
            media_type,
            {**context, "encoding": "utf-8"},
        )


class PublicAuthView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes = [CredentialsParser]


# What a body that is not the credentials object is told (SPEC §7 keeps its
# error "invalid request"; the detail says what to send instead).
_NOT_CREDENTIALS = 'the body must be a JSON object: {"id": ..., "password": ...}'


def _credentials(request: Request) -> tuple[str, str]:
    try:
        data = request.data
    except (exceptions.ParseError, exceptions.UnsupportedMediaType):
        raise services.InvalidRequest(_NOT_CREDENTIALS) from None
    if not isinstance(data, dict):
        raise services.InvalidRequest(_NOT_CREDENTIALS)
    serializer = CredentialsSerializer(data=data)
    if not serializer.is_valid():
        raise InvalidInput(serializer_errors_text(serializer.errors))
    return serializer.validated_data["id"], serializer.validated_data["password"]


def _set_refresh_cookie(response: Response, value: str, max_age: int) -> None:
    response.set_cookie(
        settings.AUTH_COOKIE_NAME,
        value,
        max_age=max_age,
        expires="Thu, 01 Jan 1970 00:00:00 GMT" if max_age == 0 else None,
        path=settings.AUTH_COOKIE_PATH,
        domain=settings.AUTH_COOKIE_DOMAIN,
        secure=settings.AUTH_COOKIE_SECURE,
        httponly=True,
        samesite=settings.AUTH_COOKIE_SAMESITE,
    )


def _session_response(session: services.Session) -> Response:
    response = Response(
        {"accessToken": session.access_token, "expiresIn": session.expires_in},
        headers={"Cache-Control": "no-store"},
    )
    _set_refresh_cookie(response, session.refresh_token, session.refresh_max_age)
    return response


def _throttled(error: LoginThrottled) -> exceptions.Throttled:
    return exceptions.Throttled(wait=error.retry_after)


class RegisterView(PublicAuthView):
    @extend_schema(
        operation_id="auth_register",
        summary="Create an account (only when ALLOW_SIGNUP) and log it in",
        request=CredentialsSerializer,
        responses={
            200: OpenApiResponse(TokenSerializer, description=_COOKIE_DOC),
            400: _BAD_BODY,
            403: _error("`signup disabled`."),
            409: _error("`already exists`."),
            429: _SIGNUP_THROTTLED,
        },
        parameters=[_SET_COOKIE],
        auth=[],
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        if not settings.ALLOW_SIGNUP:
            raise services.SignupDisabled()
        login_id, password = _credentials(request)
        try:
            user = services.user_register(
                login_id=login_id,
                password=password,
                client=client_address(request) or "unknown",
            )
        except LoginThrottled as error:
            raise _throttled(error) from None
        return _session_response(services.token_issue(user=user))


class LoginView(PublicAuthView):
    @extend_schema(
        operation_id="auth_login",
        summary="Log in with a login id and password",
        request=CredentialsSerializer,
        responses={
            200: OpenApiResponse(TokenSerializer, description=_COOKIE_DOC),
            400: _BAD_BODY,
            401: _error("`unauthorized`: wrong login id or password."),
            429: _THROTTLED,
        },
        parameters=[_SET_COOKIE],
        auth=[],
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        login_id, password = _credentials(request)
        try:
            user = services.user_login(
                login_id=login_id,
                password=password,
                client=client_address(request) or "unknown",
            )
        except LoginThrottled as error:
            raise _throttled(error) from None
        return _session_response(services.token_issue(user=user))


class RefreshView(PublicAuthView):
    @extend_schema(
        operation_id="auth_refresh",
        summary="Rotate the refresh cookie and get a new access token",
        request=None,
        responses={
            200: OpenApiResponse(TokenSerializer, description=_COOKIE_DOC),
            401: _error("`unauthorized`: cookie missing, expired or revoked."),
        },
        parameters=[_REFRESH_COOKIE, _SET_COOKIE],
        auth=[],
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        raw = request.COOKIES.get(settings.AUTH_COOKIE_NAME, "")
        try:
            if not raw:
                raise services.Unauthorized()
            session = services.token_rotate(refresh_token=raw)
        except services.Unauthorized:
            response = Response({"error": "unauthorized"}, status=401)
            if raw:
                _set_refresh_cookie(response, "", 0)
            return response
        return _session_response(session)


class LogoutView(PublicAuthView):
    @extend_schema(
        operation_id="auth_logout",
        summary="Revoke the refresh cookie and clear it",
        request=None,
        responses={200: LogoutSerializer},
        parameters=[_REFRESH_COOKIE],
        auth=[],
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        raw = request.COOKIES.get(settings.AUTH_COOKIE_NAME, "")
        if raw:
            services.token_revoke(refresh_token=raw)
        response = Response({"status": "logged_out"})
        _set_refresh_cookie(response, "", 0)
        return response


class ConfigView(PublicAuthView):
    @extend_schema(
        operation_id="auth_config",
        summary="What the login page may offer",
        responses={200: ConfigSerializer},
        auth=[],
        tags=["auth"],
    )
    def get(self, request: Request) -> Response:
        return Response({"allowSignup": settings.ALLOW_SIGNUP})


class MeView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="auth_me",
        summary="The user the access token belongs to",
        responses={
            200: MeSerializer,
            401: _error("`unauthorized`: no, expired or invalid access token."),
        },
        tags=["auth"],
    )
    def get(self, request: Request) -> Response:
        user: Any = request.user
        return Response({"userId": user.pk, "loginId": user.get_username()})
