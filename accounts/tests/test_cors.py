import pytest

from accounts.tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

FRONTEND = "https://kuberca.example.com"


@pytest.fixture(autouse=True)
def cors_origins(settings):
    settings.CORS_ALLOWED_ORIGINS = [FRONTEND]


def _preflight(client, origin: str, path: str = "/api/v1/auth/login"):  # noqa: ANN001, ANN202
    return client.options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type, authorization",
    )


def test_preflight_from_allowed_origin_is_answered(api_client):
    response = _preflight(api_client, FRONTEND)

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == FRONTEND
    assert response["Access-Control-Allow-Credentials"] == "true"
    assert "POST" in response["Access-Control-Allow-Methods"]
    allowed_headers = response["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed_headers
    assert "content-type" in allowed_headers


def test_preflight_for_protected_route_needs_no_token(api_client):
    response = _preflight(api_client, FRONTEND, "/api/v1/auth/me")

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == FRONTEND


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example.com",
        "https://kuberca.example.com.evil.com",
        "http://kuberca.example.com",
        "https://sub.kuberca.example.com",
        "null",
    ],
)
def test_other_origins_get_no_cors_grant(api_client, origin):
    response = _preflight(api_client, origin)

    assert "Access-Control-Allow-Origin" not in response
    assert "Access-Control-Allow-Credentials" not in response


def test_login_from_allowed_origin_carries_credentials_headers(api_client):
    UserFactory(username="oncall")

    response = api_client.post(
        "/api/v1/auth/login",
        {"id": "oncall", "password": PASSWORD},
        format="json",
        HTTP_ORIGIN=FRONTEND,
    )

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == FRONTEND
    assert response["Access-Control-Allow-Credentials"] == "true"
    assert response.cookies["kube_rca_refresh"].value


def test_error_from_allowed_origin_is_readable_by_the_frontend(api_client):
    response = api_client.post("/api/v1/auth/refresh", HTTP_ORIGIN=FRONTEND)

    assert response.status_code == 401
    assert response["Access-Control-Allow-Origin"] == FRONTEND
