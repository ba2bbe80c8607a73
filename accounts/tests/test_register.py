import pytest
from django.contrib.auth import get_user_model

from accounts.tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/auth/register"


@pytest.fixture
def signup(settings):
    settings.ALLOW_SIGNUP = True


def test_register_is_refused_when_signup_is_disabled(post_json):
    response = post_json(REGISTER, {"id": "newcomer", "password": PASSWORD})

    assert response.status_code == 403
    assert response.json() == {"error": "signup disabled"}
    assert not get_user_model().objects.filter(username="newcomer").exists()


def test_register_creates_user_and_logs_it_in(post_json, signup, settings):
    response = post_json(REGISTER, {"id": "newcomer", "password": PASSWORD})

    assert response.status_code == 200
    assert set(response.json()) == {"accessToken", "expiresIn"}
    assert response.cookies[settings.AUTH_COOKIE_NAME]["httponly"] is True
    user = get_user_model().objects.get(username="newcomer")
    assert not user.is_staff and not user.is_superuser
    assert user.check_password(PASSWORD)


def test_registered_user_can_log_in(post_json, signup):
    post_json(REGISTER, {"id": "newcomer", "password": PASSWORD})

    response = post_json("/api/v1/auth/login", {"id": "newcomer", "password": PASSWORD})

    assert response.status_code == 200


def test_register_rejects_existing_login_id(post_json, signup):
    UserFactory(username="oncall")

    response = post_json(REGISTER, {"id": "oncall", "password": PASSWORD})

    assert response.status_code == 409
    assert response.json() == {"error": "already exists"}


def test_register_rejects_login_id_differing_only_in_case(post_json, signup):
    UserFactory(username="oncall")

    response = post_json(REGISTER, {"id": "OnCall", "password": PASSWORD})

    assert response.status_code == 409
    assert response.json() == {"error": "already exists"}


def test_register_rejects_a_full_width_spelling_of_an_existing_login_id(
    post_json, signup
):
    # Django stores usernames NFKC-normalised: "ＯＮＣＡＬＬ" would become "ONCALL".
    UserFactory(username="oncall")

    response = post_json(REGISTER, {"id": "ＯＮＣＡＬＬ", "password": PASSWORD})

    assert response.status_code == 409
    assert response.json() == {"error": "already exists"}
    assert get_user_model().objects.count() == 1


@pytest.mark.parametrize(
    "login_id",
    ["\ufdfa" * 3, "\ufdfa" * 64],
    ids=["spaces-once-normalised", "too-long-once-normalised"],
)
def test_register_checks_the_login_id_it_would_store(post_json, signup, login_id):
    response = post_json(REGISTER, {"id": login_id, "password": PASSWORD})

    assert response.status_code == 400
    assert response.json()["error"] == "invalid input"
    assert "id" in response.json()["detail"]
    assert not get_user_model().objects.exists()


def test_register_stores_the_normalised_login_id(post_json, signup):
    response = post_json(REGISTER, {"id": "ｎｅｗｃｏｍｅｒ", "password": PASSWORD})

    assert response.status_code == 200
    assert get_user_model().objects.get().username == "newcomer"


def test_register_rejects_common_password(post_json, signup):
    response = post_json(REGISTER, {"id": "newcomer", "password": "password123"})

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid input"
    assert "common" in body["detail"]
    assert not get_user_model().objects.filter(username="newcomer").exists()


def test_register_rejects_login_id_that_is_not_a_username(post_json, signup):
    response = post_json(REGISTER, {"id": "two words", "password": PASSWORD})

    assert response.status_code == 400
    assert response.json()["error"] == "invalid input"


def test_register_rejects_short_id_and_bad_json(post_json, api_client, signup):
    short = post_json(REGISTER, {"id": "ab", "password": PASSWORD})
    bad = api_client.post(REGISTER, "{", content_type="application/json")

    assert short.status_code == 400
    assert short.json()["error"] == "invalid input"
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid request"
    assert bad.json()["detail"].startswith("the body must be a JSON object")
