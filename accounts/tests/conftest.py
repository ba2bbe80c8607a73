from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone


class Clock:
    """A controllable `django.utils.timezone.now`."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture(autouse=True)
def fast_password_hasher(settings) -> None:
    # Argon2 (the configured hasher) costs most of a second per hash on a busy
    # machine; test_login checks that it is what production stores.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def clock(monkeypatch) -> Clock:
    # Start on a window boundary, so a window's length is its whole lifetime.
    clock = Clock(datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC))
    monkeypatch.setattr(timezone, "now", clock)
    return clock


@pytest.fixture
def post_json(api_client) -> Callable:
    def post(path: str, body: object, **extra: str):
        return api_client.post(path, body, format="json", **extra)

    return post
