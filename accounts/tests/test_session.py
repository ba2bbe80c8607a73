"""The refresh cookie's whole life: login, /me, refresh, logout."""

from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts import services
from accounts.tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

COOKIE = "kube_rca_refresh"


def _login(client: APIClient, username: str = "oncall") -> dict:
    response = client.post(
        "/api/v1/auth/login",
        {"id": username, "password": PASSWORD},
        format="json",
    )
    assert response.status_code == 200
    return response.json()


def _refresh(client: APIClient, cookie: str | None = None):  # noqa: ANN202
    if cookie is not None:
        client.cookies[COOKIE] = cookie
    return client.post("/api/v1/auth/refresh")


def test_cookie_flow_login_me_refresh_logout(api_client):
    user = UserFactory(username="oncall")

    body = _login(api_client)
    first_cookie = api_client.cookies[COOKIE].value
    me = api_client.get(
        "/api/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {body['accessToken']}"
    )
    assert me.status_code == 200
    assert me.json() == {"userId": user.pk, "loginId": "oncall"}

    refreshed = _refresh(api_client)
    assert refreshed.status_code == 200
    assert set(refreshed.json()) == {"accessToken", "expiresIn"}
    second_cookie = refreshed.cookies[COOKIE]
    assert second_cookie.value not in ("", first_cookie)
    assert second_cookie["httponly"] is True
    assert second_cookie["max-age"] == 7 * 24 * 3600
    new_access = refreshed.json()["accessToken"]
    assert (
        api_client.get(
            "/api/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {new_access}"
        ).status_code
        == 200
    )

    assert _refresh(APIClient(), first_cookie).status_code == 401

    logout = api_client.post("/api/v1/auth/logout")
    assert logout.status_code == 200
    assert logout.json() == {"status": "logged_out"}
    cleared = logout.cookies[COOKIE]
    assert cleared.value == ""
    assert cleared["max-age"] == 0
    assert cleared["path"] == "/"

    after = _refresh(APIClient(), second_cookie.value)
    assert after.status_code == 401
    assert after.json() == {"error": "unauthorized"}


def test_refresh_without_cookie_is_unauthorized(api_client):
    response = api_client.post("/api/v1/auth/refresh")

    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}


def test_refresh_reuse_of_rotated_token_is_unauthorized(api_client):
    UserFactory(username="oncall")
    _login(api_client)
    original = api_client.cookies[COOKIE].value

    assert _refresh(APIClient(), original).status_code == 200
    reused = _refresh(APIClient(), original)

    assert reused.status_code == 401
    assert reused.cookies[COOKIE].value == ""  # the browser drops it


def test_refresh_rejects_expired_token(api_client):
    user = UserFactory(username="oncall")
    token = RefreshToken.for_user(user)
    token.set_exp(lifetime=-timedelta(seconds=1))

    assert _refresh(api_client, str(token)).status_code == 401


def test_refresh_rejects_token_signed_with_another_key(api_client):
    user = UserFactory(username="oncall")
    genuine = RefreshToken.for_user(user)
    forged = jwt.encode(genuine.payload, "another-key-" * 4, algorithm="HS256")

    assert _refresh(api_client, forged).status_code == 401


def test_refresh_rejects_access_token_in_cookie(api_client):
    user = UserFactory(username="oncall")

    response = _refresh(api_client, str(AccessToken.for_user(user)))

    assert response.status_code == 401


def test_refresh_rejects_garbage_cookie(api_client):
    assert _refresh(api_client, "not-a-jwt").status_code == 401


def test_refresh_rejects_blacklisted_token(api_client):
    user = UserFactory(username="oncall")
    token = RefreshToken.for_user(user)
    token.blacklist()

    assert _refresh(api_client, str(token)).status_code == 401


def test_refresh_rejects_deactivated_user(api_client):
    user = UserFactory(username="oncall")
    token = str(RefreshToken.for_user(user))
    user.is_active = False
    user.save(update_fields=["is_active"])

    assert _refresh(api_client, token).status_code == 401


def test_refresh_rejects_deleted_user(api_client):
    user = UserFactory(username="oncall")
    token = str(RefreshToken.for_user(user))
    user.delete()

    assert _refresh(api_client, token).status_code == 401


@pytest.mark.parametrize("user_id", ["admin", [1], "1\u0000"])
def test_refresh_rejects_token_with_malformed_user_id(api_client, user_id):
    # Signed with JWT_SECRET and outstanding, so only its user id is wrong.
    session = services.token_issue(user=UserFactory(username="oncall"))
    token = RefreshToken(session.refresh_token)
    token["user_id"] = user_id

    response = _refresh(api_client, str(token))

    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}


@pytest.mark.parametrize(
    "claim", [("user_id", float("inf")), ("exp", 10**20), ("jti", "a\u0000b")]
)
def test_refresh_and_logout_with_an_impossible_claim_are_safe(api_client, claim):
    session = services.token_issue(user=UserFactory(username="oncall"))
    token = RefreshToken(session.refresh_token)
    token[claim[0]] = claim[1]

    assert _refresh(api_client, str(token)).status_code == 401
    api_client.cookies[COOKIE] = str(token)
    assert api_client.post("/api/v1/auth/logout").status_code == 200


def test_refresh_ignores_a_stale_bearer_header(api_client):
    UserFactory(username="oncall")
    _login(api_client)

    response = api_client.post(
        "/api/v1/auth/refresh", HTTP_AUTHORIZATION="Bearer expired.or.bad"
    )

    assert response.status_code == 200


def test_token_rotate_works_once_per_token():
    user = UserFactory(username="oncall")
    session = services.token_issue(user=user)

    rotated = services.token_rotate(refresh_token=session.refresh_token)

    assert rotated.user_id == user.pk
    with pytest.raises(services.Unauthorized):
        services.token_rotate(refresh_token=session.refresh_token)
    assert BlacklistedToken.objects.count() == 1


def test_logout_without_cookie_still_logs_out(api_client):
    response = api_client.post("/api/v1/auth/logout")

    assert response.status_code == 200
    assert response.json() == {"status": "logged_out"}
    assert response.cookies[COOKIE]["max-age"] == 0


def test_logout_with_bad_cookie_still_logs_out(api_client):
    api_client.cookies[COOKIE] = "garbage"

    response = api_client.post("/api/v1/auth/logout")

    assert response.status_code == 200
    assert BlacklistedToken.objects.count() == 0


def test_logout_clears_cookie_with_its_path_and_domain(api_client, settings):
    settings.AUTH_COOKIE_PATH = "/api"
    settings.AUTH_COOKIE_DOMAIN = "kuberca.example.com"

    response = api_client.post("/api/v1/auth/logout")

    cleared = response.cookies[COOKIE]
    assert cleared["path"] == "/api"
    assert cleared["domain"] == "kuberca.example.com"
    assert cleared["httponly"] is True
    assert cleared["secure"] is True


def test_logout_revokes_the_refresh_token(api_client):
    user = UserFactory(username="oncall")
    session = services.token_issue(user=user)
    api_client.cookies[COOKIE] = session.refresh_token

    api_client.post("/api/v1/auth/logout")

    assert BlacklistedToken.objects.filter(token__user=user).count() == 1


def test_config_reports_signup_flag(api_client, settings):
    assert api_client.get("/api/v1/auth/config").json() == {"allowSignup": False}
    settings.ALLOW_SIGNUP = True
    assert api_client.get("/api/v1/auth/config").json() == {"allowSignup": True}


def test_config_ignores_a_bad_bearer_header(api_client):
    response = api_client.get("/api/v1/auth/config", HTTP_AUTHORIZATION="Bearer x")

    assert response.status_code == 200


def test_cookie_name_is_the_contract():
    assert settings.AUTH_COOKIE_NAME == COOKIE


@pytest.mark.django_db(transaction=True)
def test_concurrent_refreshes_of_one_token_let_only_one_through():
    from kuberca.testing.concurrency import run_at_once

    user = UserFactory(username="racer")
    refresh_token = services.token_issue(user=user).refresh_token

    def rotate(_: int) -> str:
        try:
            services.token_rotate(refresh_token=refresh_token)
        except services.Unauthorized:
            return "refused"
        return "rotated"

    outcomes = run_at_once(4, rotate)

    assert sorted(outcomes) == ["refused", "refused", "refused", "rotated"]


def test_a_password_change_ends_the_refresh_sessions_started_before_it(api_client):
    user = UserFactory(username="oncall")
    _login(api_client)
    cookie = api_client.cookies[COOKIE].value

    user.set_password("a-new-password-now")
    user.save(update_fields=["password"])
    refused = _refresh(APIClient(), cookie)
    _login_again = APIClient().post(
        "/api/v1/auth/login",
        {"id": "oncall", "password": "a-new-password-now"},
        format="json",
    )
    fresh = _refresh(APIClient(), _login_again.cookies[COOKIE].value)

    assert refused.status_code == 401
    assert fresh.status_code == 200
