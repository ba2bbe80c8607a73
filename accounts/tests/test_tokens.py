"""Access tokens on a protected route (/me): what gets a 401."""

import base64
import json
from datetime import timedelta

import jwt
import pytest
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ME = "/api/v1/auth/me"


def _me(client, token: str):  # noqa: ANN001, ANN202
    return client.get(ME, HTTP_AUTHORIZATION=f"Bearer {token}")


def _b64(data: dict) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_me_answers_a_valid_access_token(api_client):
    user = UserFactory(username="oncall")

    response = _me(api_client, str(AccessToken.for_user(user)))

    assert response.json() == {"userId": user.pk, "loginId": "oncall"}


def test_me_without_token_is_unauthorized_with_bearer_challenge(api_client):
    response = api_client.get(ME)

    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_expired_access_token_is_unauthorized(api_client):
    token = AccessToken.for_user(UserFactory())
    token.set_exp(lifetime=-timedelta(seconds=1))

    response = _me(api_client, str(token))

    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}


def test_access_token_signed_with_another_key_is_unauthorized(api_client):
    genuine = AccessToken.for_user(UserFactory())
    forged = jwt.encode(genuine.payload, "not-the-jwt-secret-" * 3, algorithm="HS256")

    assert _me(api_client, forged).status_code == 401


def test_access_token_with_alg_none_is_unauthorized(api_client):
    genuine = AccessToken.for_user(UserFactory())
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(genuine.payload)}."

    assert _me(api_client, unsigned).status_code == 401


def test_access_token_with_tampered_payload_is_unauthorized(api_client):
    victim, attacker = UserFactory(), UserFactory()
    header, _, signature = str(AccessToken.for_user(attacker)).split(".")
    payload = dict(AccessToken.for_user(attacker).payload, user_id=str(victim.pk))

    assert _me(api_client, f"{header}.{_b64(payload)}.{signature}").status_code == 401


def test_refresh_token_is_not_an_access_token(api_client):
    refresh = RefreshToken.for_user(UserFactory())

    assert _me(api_client, str(refresh)).status_code == 401


def test_access_token_of_deactivated_user_is_unauthorized(api_client):
    user = UserFactory()
    token = str(AccessToken.for_user(user))
    user.is_active = False
    user.save(update_fields=["is_active"])

    assert _me(api_client, token).status_code == 401


def test_access_token_of_deleted_user_is_unauthorized(api_client):
    user = UserFactory()
    token = str(AccessToken.for_user(user))
    user.delete()

    assert _me(api_client, token).status_code == 401


@pytest.mark.parametrize("header", ["Bearer", "Token abc", "Basic b25jYWxsOng="])
def test_malformed_authorization_header_is_unauthorized(api_client, header):
    response = api_client.get(ME, HTTP_AUTHORIZATION=header)

    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}


# Correctly signed, so only a holder of JWT_SECRET can make them: a token minted
# by hand or by another service that shares the key.
MALFORMED_USER_IDS = [
    "admin",
    [1],
    "1\u0000",
    "",
    {"id": 1},
    None,
    float("inf"),
    float("-inf"),
]


@pytest.mark.parametrize(
    "near_miss",
    [lambda pk: True, lambda pk: pk + 0.9, lambda pk: f" {pk} ", lambda pk: "١"],
    ids=["true", "fraction", "padded", "arabic-indic digit"],
)
def test_access_token_naming_its_user_only_loosely_is_unauthorized(
    api_client, near_miss
):
    user = UserFactory()
    token = AccessToken.for_user(user)
    token["user_id"] = near_miss(user.pk)

    assert _me(api_client, str(token)).status_code == 401


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        *(("exp", exp) for exp in [10**20, 99_999_999_999_999]),  # impossible
        *(("user_id", user_id) for user_id in MALFORMED_USER_IDS),
    ],
)
def test_access_token_with_a_malformed_claim_is_unauthorized(api_client, claim, value):
    token = AccessToken.for_user(UserFactory())
    token[claim] = value

    response = _me(api_client, str(token))

    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_access_token_with_malformed_user_id_is_unauthorized_on_incidents(
    api_client,
):
    token = AccessToken.for_user(UserFactory())
    token["user_id"] = "admin"

    response = api_client.get("/api/v1/incidents", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}
