"""Which user a token names: simplejwt's authentication, minus its 500s.

REST_FRAMEWORK names JWTAuthentication, so every protected route uses it, and
accounts.services reads refresh tokens with the same token_user_id. A token
that is correctly signed but names no possible user is refused like any other
bad token (401 `{"error": "unauthorized"}`), never passed to the database.
It imports nothing of kuberca's: DRF loads it while its views module loads.
"""

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from rest_framework_simplejwt import authentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import RefreshToken, Token

logger = logging.getLogger(__name__)

T = TypeVar("T")


def token_user_id(token: Token) -> Any | None:
    """Return the token's user id as a value of the user id field, else None.

    A correctly signed token can still carry any JSON there (one minted by
    hand, or by another service that holds JWT_SECRET). Looked up as it is,
    "admin" or [1] makes the database lookup raise instead of finding nobody.
    """
    field = get_user_model()._meta.get_field(api_settings.USER_ID_FIELD)
    claim = token.get(api_settings.USER_ID_CLAIM)
    try:
        value = field.to_python(claim)
    except (ValidationError, OverflowError, TypeError, ValueError):
        return None  # Infinity is a JSON number to the token library
    # Only a claim that is the id itself: not true, 1.9, " 1 " or "١" for 1.
    if value is None or isinstance(claim, bool) or str(value) != str(claim):
        return None
    return value


def token_readable(read: Callable[[], T]) -> T:
    """Run `read` (parsing a token), taking a date it cannot hold as a bad token.

    simplejwt checks `exp` by turning it into a datetime: 1e20 overflows.
    """
    try:
        return read()
    except (OverflowError, ValueError):
        raise InvalidToken("Token has an impossible date") from None


class SafeRefreshToken(RefreshToken):
    """simplejwt's refresh token, refusing a `jti` no database column can hold.

    Its blacklist lookup runs while the token is read: a correctly signed
    token whose `jti` holds a NUL character would make that query raise (a
    400 for refresh, and logout must always answer 200) instead of finding
    nothing.
    """

    def check_blacklist(self) -> None:
        jti = self.payload.get(api_settings.JTI_CLAIM)
        if isinstance(jti, str) and "\x00" in jti:
            raise TokenError("Token has an impossible id")
        super().check_blacklist()


class JWTAuthentication(authentication.JWTAuthentication):
    def get_validated_token(self, raw_token: bytes) -> Token:
        validate = super().get_validated_token
        return token_readable(lambda: validate(raw_token))

    def get_user(self, validated_token: Token) -> AbstractBaseUser:
        if token_user_id(validated_token) is None:
            logger.warning("access token refused: malformed user id")
            raise InvalidToken("Token contained no recognizable user identification")
        return super().get_user(validated_token)
