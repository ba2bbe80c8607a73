"""Fixtures shared by every app's tests: users, API clients, local peers."""

from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from kuberca.testing.http import LocalHTTPServer, Reply, Responder


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):  # noqa: ANN001, ANN202
    # Argon2 takes most of a second per hash here; tests that check the
    # production hasher set PASSWORD_HASHERS themselves.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def user(db):  # noqa: ANN001, ANN201
    return get_user_model().objects.create_user(
        username="oncall", password="s3cret-pass!"
    )


@pytest.fixture
def staff_user(db):  # noqa: ANN001, ANN201
    return get_user_model().objects.create_superuser(
        username="operator", password="s3cret-pass!"
    )


@pytest.fixture
def staff_client(client):  # noqa: ANN001, ANN201
    """The admin logged in as a superuser; no password, so no slow hashing."""
    operator = get_user_model().objects.create(
        username="operator", is_staff=True, is_superuser=True
    )
    client.force_login(operator)
    return client


@pytest.fixture
def viewer_client(client):  # noqa: ANN001, ANN201
    """The admin logged in as staff who may only view: call it with the
    models' view permission codenames (`view_incident`)."""
    from django.contrib.auth.models import Permission

    def log_in(*codenames: str):  # noqa: ANN202
        viewer = get_user_model().objects.create(username="viewer", is_staff=True)
        viewer.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
        client.force_login(viewer)
        return client

    return log_in


@pytest.fixture
def plain_static_storage(settings):  # noqa: ANN001, ANN201
    """Pages rendered without collectstatic: no manifest to look names up in."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {
            "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        },
    }


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def auth_client(user) -> APIClient:  # noqa: ANN001
    client = APIClient()
    token = RefreshToken.for_user(user).access_token
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def local_server() -> Iterator[Callable[[Responder], LocalHTTPServer]]:
    """Start local HTTP servers for the test; each stops when it ends."""
    servers: list[LocalHTTPServer] = []

    def start(responder: Responder = lambda request: Reply()) -> LocalHTTPServer:
        server = LocalHTTPServer(responder)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
