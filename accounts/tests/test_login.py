import pytest
from django.test import Client

from accounts.tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

LOGIN = "/api/v1/auth/login"


def test_login_returns_access_token_and_refresh_cookie(post_json, settings):
    user = UserFactory(username="oncall")

    response = post_json(LOGIN, {"id": "oncall", "password": PASSWORD})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"accessToken", "expiresIn"}
    assert body["expiresIn"] == 15 * 60
    assert response["Cache-Control"] == "no-store"
    cookie = response.cookies[settings.AUTH_COOKIE_NAME]
    assert cookie.value and cookie.value != body["accessToken"]
    assert cookie["httponly"] is True
    assert cookie["secure"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/"
    assert cookie["max-age"] == 7 * 24 * 3600
    user.refresh_from_db()
    assert user.last_login is not None


def test_login_cookie_follows_auth_cookie_settings(post_json, settings):
    settings.AUTH_COOKIE_SECURE = False
    settings.AUTH_COOKIE_SAMESITE = "Strict"
    settings.AUTH_COOKIE_PATH = "/api/v1/auth"
    settings.AUTH_COOKIE_DOMAIN = "kuberca.example.com"
    UserFactory(username="oncall")

    response = post_json(LOGIN, {"id": "oncall", "password": PASSWORD})

    cookie = response.cookies[settings.AUTH_COOKIE_NAME]
    assert cookie["secure"] == ""
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/api/v1/auth"
    assert cookie["domain"] == "kuberca.example.com"


def test_login_accepts_trailing_slash(post_json):
    UserFactory(username="oncall")

    response = post_json(LOGIN + "/", {"id": "oncall", "password": PASSWORD})

    assert response.status_code == 200


def test_login_trims_id_and_password(post_json):
    UserFactory(username="oncall")

    response = post_json(LOGIN, {"id": "  oncall ", "password": f" {PASSWORD}\t"})

    assert response.status_code == 200


def test_login_takes_the_id_as_it_was_signed_up(post_json, settings):
    # Sign-up stores "ｏｎｃａｌｌ" NFKC-normalised, as "oncall".
    settings.ALLOW_SIGNUP = True
    signed_up = post_json(
        "/api/v1/auth/register", {"id": "ｏｎｃａｌｌ", "password": PASSWORD}
    )
    assert signed_up.status_code == 200

    response = post_json(LOGIN, {"id": "ｏｎｃａｌｌ", "password": PASSWORD})

    assert response.status_code == 200


def test_login_rejects_wrong_password(post_json):
    UserFactory(username="oncall")

    response = post_json(LOGIN, {"id": "oncall", "password": "wrong-password"})

    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}
    assert "kube_rca_refresh" not in response.cookies


def test_login_answers_unknown_user_like_wrong_password(post_json):
    UserFactory(username="oncall")

    wrong = post_json(LOGIN, {"id": "oncall", "password": "wrong-password"})
    unknown = post_json(LOGIN, {"id": "nobody", "password": "wrong-password"})

    assert unknown.status_code == wrong.status_code == 401
    assert unknown.content == wrong.content
    assert set(unknown.headers) == set(wrong.headers)


def test_login_rejects_inactive_user(post_json):
    UserFactory(username="gone", inactive=True)

    response = post_json(LOGIN, {"id": "gone", "password": PASSWORD})

    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}


@pytest.mark.parametrize(
    "body",
    [
        {"id": "ab", "password": PASSWORD},
        {"id": "x" * 65, "password": PASSWORD},
        {"id": "oncall", "password": "short"},
        {"id": "oncall", "password": "p" * 129},
        {"id": "   ab   ", "password": PASSWORD},
        {"id": "oncall", "password": "  seven  "},
        {"id": "oncall"},
        {"password": PASSWORD},
        {},
        {"id": ["oncall"], "password": PASSWORD},
    ],
    ids=[
        "short-id",
        "long-id",
        "short-password",
        "long-password",
        "short-id-after-trim",
        "short-password-after-trim",
        "no-password",
        "no-id",
        "empty",
        "id-not-a-string",
    ],
)
def test_login_rejects_invalid_input(post_json, body):
    UserFactory(username="oncall")

    response = post_json(LOGIN, body)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid input"


def test_login_invalid_input_says_what_was_wrong_without_echoing(post_json):
    response = post_json(LOGIN, {"id": "ab", "password": "p" * 129})

    detail = response.json()["detail"]
    assert detail.startswith("id: ")
    assert "password: " in detail
    assert "p" * 129 not in detail


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        ('{"id": "oncall", "password": ', "application/json"),
        ("not json at all", "application/json"),
        ('["oncall", "password"]', "application/json"),
        ('"oncall"', "application/json"),
        ("id=oncall&password=s3cret-pass", "application/x-www-form-urlencoded"),
    ],
    ids=["truncated", "garbage", "array", "string", "form"],
)
def test_login_rejects_bad_json(api_client, content, content_type):
    response = api_client.post(LOGIN, content, content_type=content_type)

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid request",
        "detail": 'the body must be a JSON object: {"id": ..., "password": ...}',
    }


def test_login_ignores_a_stale_bearer_header(post_json):
    UserFactory(username="oncall")

    response = post_json(
        LOGIN,
        {"id": "oncall", "password": PASSWORD},
        HTTP_AUTHORIZATION="Bearer not.a.token",
    )

    assert response.status_code == 200


def test_login_needs_no_csrf_token():
    UserFactory(username="oncall")
    client = Client(enforce_csrf_checks=True)

    response = client.post(
        LOGIN,
        {"id": "oncall", "password": PASSWORD},
        content_type="application/json",
    )

    assert response.status_code == 200


def test_login_answers_get_with_405(api_client):
    response = api_client.get(LOGIN)

    assert response.status_code == 405
    assert response.json()["error"] == "method not allowed"


def test_login_checks_argon2_hashes(post_json, settings):
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.Argon2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]
    user = UserFactory(username="oncall")

    response = post_json(LOGIN, {"id": "oncall", "password": PASSWORD})

    assert user.password.startswith("argon2$")
    assert response.status_code == 200


def test_production_hasher_is_argon2():
    from kuberca import settings as production

    assert production.PASSWORD_HASHERS[0].endswith("Argon2PasswordHasher")


@pytest.mark.parametrize("path", [LOGIN, "/api/v1/auth/register"])
def test_login_and_sign_up_refuse_unparsed_a_body_of_many_values(
    post_json, settings, monkeypatch, path
):
    # No one may make a web worker parse megabytes of JSON without a login:
    # ten MiB of `{}` is some 300 MiB of Python objects.
    from kuberca.parsers import SafeJSONParser

    settings.ALLOW_SIGNUP = True
    UserFactory(username="oncall")
    parsed = []
    parse = SafeJSONParser.parse
    monkeypatch.setattr(
        SafeJSONParser,
        "parse",
        lambda self, *args, **kwargs: parsed.append(1) or parse(self, *args, **kwargs),
    )
    padding = [{}] * (256 * 1024)

    response = post_json(path, {"id": "oncall", "password": PASSWORD, "x": padding})

    assert response.status_code == 400
    assert response.json()["error"] == "invalid request"
    assert parsed == []


def test_login_counts_the_values_of_a_body_in_its_own_charset(api_client):
    import base64

    UserFactory(username="oncall")
    padding = ",".join(["{}"] * 10_000)
    text = f'{{"id": "oncall", "password": "{PASSWORD}", "x": [{padding}]}}'
    # UTF-7 may write every character in base64: no `{` or `,` byte is left.
    shifted = base64.b64encode(text.encode("utf-16-be")).rstrip(b"=")
    body = b"+" + shifted + b"-"
    assert body.decode("utf-7") == text

    response = api_client.generic(
        "POST", LOGIN, data=body, content_type="application/json; charset=utf-7"
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid request"
