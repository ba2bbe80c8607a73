"""Which user a token names: simplejwt's authentication, minus its one 500.

REST_FRAMEWORK names JWTAuthentication, so every protected route uses it, and
accounts.services reads refresh tokens with the same token_user_id. A token
that is correctly signed but names no possible user is refused like any other
bad token (401 `{"error": "unauthorized"}`), never passed to the database.
It imports nothing of kuberca's: DRF loads it while its views module loads.
"""

import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from rest_framework_simplejwt import authentication
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token

logger = logging.getLogger(__name__)


def token_user_id(token: Token) -> Any | None:
    """Return the token's user id as a value of the user id field, else None.

    A correctly signed token can still carry any JSON there (one minted by
    hand, or by another service that holds JWT_SECRET). Looked up as it is,
    "admin" or [1] makes the database lookup raise instead of finding nobody.
    """
    field = get_user_model()._meta.get_field(api_settings.USER_ID_FIELD)
    try:
        return field.to_python(token.get(api_settings.USER_ID_CLAIM))
    except ValidationError:
        return None


class JWTAuthentication(authentication.JWTAuthentication):
    def get_user(self, validated_token: Token) -> AbstractBaseUser:
        if token_user_id(validated_token) is None:
            logger.warning("access token refused: malformed user id")
            raise InvalidToken("Token contained no recognizable user identification")
        return super().get_user(validated_token)
