"""Deployment checks for the auth settings (`manage.py check --deploy`)."""

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register

MIN_JWT_SECRET_LENGTH = 32  # bytes; RFC 7518 §3.2 for HS256


@register(Tags.security, deploy=True)
def check_auth_settings(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    if len(settings.JWT_SECRET.encode()) < MIN_JWT_SECRET_LENGTH:
        messages.append(
            Warning(
                "JWT_SECRET is shorter than 32 bytes, so access and refresh "
                "tokens can be forged by guessing it.",
                hint="Set JWT_SECRET (or SECRET_KEY) to 50 or more random characters.",
                id="accounts.W001",
            )
        )
    if not settings.AUTH_COOKIE_SECURE:
        messages.append(
            Warning(
                "AUTH_COOKIE_SECURE is off, so the refresh cookie is also sent "
                "over plain HTTP.",
                hint="Serve kuberca over HTTPS and leave AUTH_COOKIE_SECURE on.",
                id="accounts.W002",
            )
        )
    return messages
