"""The admin of people, groups and tokens: an action on a malformed
selection runs nothing (kuberca.admin.CheckedSelection), login ids and
revocations follow the API's rules."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_static_storage")]


@pytest.mark.parametrize(
    "changelist",
    [
        "/admin/auth/user/",
        "/admin/auth/group/",
    ],
)
def test_an_action_on_a_malformed_selection_runs_nothing(staff_client, changelist):  # noqa: ANN001
    response = staff_client.post(
        changelist,
        {"action": "delete_selected", "_selected_action": ["abc"]},
        follow=True,
    )

    assert response.status_code == 200
    assert any("not valid here" in str(m) for m in get_messages(response.wsgi_request))
    assert get_user_model().objects.filter(username="operator").exists()


def _add(staff_client, username: str):  # noqa: ANN001, ANN202
    return staff_client.post(
        "/admin/auth/user/add/",
        {
            "username": username,
            "usable_password": "true",
            "password1": "a-long-enough-pass",
            "password2": "a-long-enough-pass",
        },
    )


def _rename(staff_client, user, username: str):  # noqa: ANN001, ANN202
    return staff_client.post(
        f"/admin/auth/user/{user.pk}/change/",
        {
            "username": username,
            "is_active": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )


@pytest.mark.parametrize("username", ["ab", "x" * 65, "Operator", "ｏｐｅｒａｔｏｒ"])
def test_the_admin_adds_no_user_with_a_login_id_the_api_refuses(
    staff_client,  # noqa: ANN001
    username: str,
) -> None:
    response = _add(staff_client, username)

    assert response.status_code == 200  # the form again, with its error
    assert response.context["adminform"].form.errors["username"]
    assert list(get_user_model().objects.values_list("username", flat=True)) == [
        "operator"
    ]


def test_the_admin_adds_a_user_the_api_can_sign_in(staff_client) -> None:  # noqa: ANN001
    response = _add(staff_client, "new-oncall")

    assert response.status_code == 302
    assert get_user_model().objects.filter(username="new-oncall").exists()


@pytest.mark.parametrize("username", ["ab", "y" * 65, "OnCall"])
def test_the_admin_renames_no_user_to_a_login_id_the_api_refuses(
    staff_client,  # noqa: ANN001
    username: str,
) -> None:
    get_user_model().objects.create(username="oncall")
    user = get_user_model().objects.create(username="second")

    response = _rename(staff_client, user, username)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["username"]
    user.refresh_from_db()
    assert user.username == "second"


def test_the_admin_keeps_an_older_login_id_and_takes_a_new_case_of_ones_own(
    staff_client,  # noqa: ANN001
) -> None:
    # An account made before these rules (a 2-character id) stays editable;
    # a user may change the case of their own id.
    older = get_user_model().objects.create(username="qa")
    assert _rename(staff_client, older, "qa").status_code == 302
    user = get_user_model().objects.create(username="oncall")
    assert _rename(staff_client, user, "OnCall").status_code == 302
    user.refresh_from_db()
    assert user.username == "OnCall"


REFUSED_PASSWORDS = [
    "short12",
    " a-long-enough-pass",
    "a-long-enough-pass\t",
    "p" * 129,
]


def _api_login(login_id: str, password: str) -> int:
    from rest_framework.test import APIClient

    return (
        APIClient()
        .post("/api/v1/auth/login", {"id": login_id, "password": password}, "json")
        .status_code
    )


@pytest.mark.parametrize("password", REFUSED_PASSWORDS)
def test_the_admin_adds_no_user_with_a_password_the_api_login_refuses(
    staff_client,  # noqa: ANN001
    password: str,
) -> None:
    response = staff_client.post(
        "/admin/auth/user/add/",
        {
            "username": "new-oncall",
            "usable_password": "true",
            "password1": password,
            "password2": password,
        },
    )

    assert response.status_code == 200  # the form again, with its error
    assert response.context["adminform"].form.errors["password1"]
    assert not get_user_model().objects.filter(username="new-oncall").exists()


def test_the_admin_adds_a_user_without_a_password(staff_client) -> None:  # noqa: ANN001
    response = staff_client.post(
        "/admin/auth/user/add/", {"username": "new-oncall", "usable_password": "false"}
    )

    assert response.status_code == 302
    assert not get_user_model().objects.get(username="new-oncall").has_usable_password()


@pytest.mark.parametrize("password", REFUSED_PASSWORDS)
def test_the_admin_sets_no_password_the_api_login_refuses(
    staff_client,  # noqa: ANN001
    user,  # noqa: ANN001
    password: str,
) -> None:
    response = staff_client.post(
        f"/admin/auth/user/{user.pk}/password/",
        {"usable_password": "true", "password1": password, "password2": password},
    )

    assert response.status_code == 200  # the form again, with its error
    assert response.context["form"].errors["password1"]
    assert _api_login("oncall", "s3cret-pass!") == 200


def test_the_admin_sets_a_password_the_api_login_takes(staff_client, user) -> None:  # noqa: ANN001
    response = staff_client.post(
        f"/admin/auth/user/{user.pk}/password/",
        {"password1": "a-long-enough-pass", "password2": "a-long-enough-pass"},
    )

    assert response.status_code == 302
    assert _api_login("oncall", "a-long-enough-pass") == 200


def test_the_admin_shows_no_refresh_token_of_an_issued_session(staff_client, user):  # noqa: ANN001
    from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

    from accounts.services import token_issue, token_revoke

    session = token_issue(user=user)
    outstanding = OutstandingToken.objects.get(user=user)
    pages = [
        "/admin/token_blacklist/outstandingtoken/",
        f"/admin/token_blacklist/outstandingtoken/{outstanding.pk}/change/",
    ]
    answers = [staff_client.get(page) for page in pages]
    token_revoke(refresh_token=session.refresh_token)
    revoked = outstanding.blacklistedtoken.pk
    answers.append(
        staff_client.get(f"/admin/token_blacklist/blacklistedtoken/{revoked}/change/")
    )

    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert outstanding.jti in answers[1].content.decode()
    # The token itself is a credential: whoever reads it can refresh.
    assert not any(session.refresh_token in a.content.decode() for a in answers)


def test_a_revoked_refresh_token_stays_revoked_whatever_the_admin_posts(
    staff_client,  # noqa: ANN001
    user,  # noqa: ANN001
) -> None:
    from rest_framework.test import APIClient
    from rest_framework_simplejwt.token_blacklist.models import (
        BlacklistedToken,
        OutstandingToken,
    )

    from accounts.services import token_issue, token_rotate

    used = token_issue(user=user).refresh_token
    token_rotate(refresh_token=used)
    revoked = BlacklistedToken.objects.get()
    other = OutstandingToken.objects.exclude(pk=revoked.token_id).get()
    pages = "/admin/token_blacklist/blacklistedtoken/"

    listing = staff_client.get(pages)
    answers = [
        staff_client.post(
            pages,
            {"action": "delete_selected", "_selected_action": [revoked.pk]}
            | {"post": "yes"},
        ),
        staff_client.post(f"{pages}{revoked.pk}/delete/", {"post": "yes"}),
        staff_client.post(f"{pages}{revoked.pk}/change/", {"token": other.pk}),
        staff_client.post(f"{pages}add/", {"token": other.pk}),
    ]
    client = APIClient()
    client.cookies["kube_rca_refresh"] = used
    refreshed = client.post("/api/v1/auth/refresh")

    assert listing.status_code == 200
    assert "delete_selected" not in listing.content.decode()
    assert [a.status_code for a in answers] == [200, 403, 403, 403]
    assert list(BlacklistedToken.objects.values_list("pk", "token")) == [
        (revoked.pk, revoked.token_id)
    ]
    assert refreshed.status_code == 401


def test_the_admin_login_shares_the_api_login_throttle(client, settings):  # noqa: ANN001
    # One budget per login id, whichever door is knocked on: else the admin
    # login guesses the passwords the API login throttles.
    settings.LOGIN_THROTTLE_PER_LOGIN_ID = "2/hour"
    get_user_model().objects.create_superuser(
        username="root", password="the-right-password"
    )

    def log_in(password: str):  # noqa: ANN202
        return client.post(
            "/admin/login/?next=/admin/",
            {"username": "root", "password": password, "next": "/admin/"},
        )

    guesses = [log_in("a-wrong-guess").status_code for _ in range(2)]
    response = log_in("the-right-password")
    api = client.post(
        "/api/v1/auth/login",
        {"id": "root", "password": "the-right-password"},
        content_type="application/json",
    )

    assert guesses == [200, 200]
    assert response.status_code == 200
    assert "Too many failed logins" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert api.status_code == 429


@pytest.mark.django_db(transaction=True)
def test_admin_adds_and_a_sign_up_of_one_login_id_at_once_make_one_account(
    settings,  # noqa: ANN001
) -> None:
    # The admin's check and its save are one transaction that holds sign-up's
    # lock of the id, so "Casexyz", "CASEXYZ" and "casexyz" at once are one.
    from django.test import Client

    from kuberca.testing.concurrency import run_at_once

    settings.ALLOW_SIGNUP = True
    operator = get_user_model().objects.create(
        username="operator", is_staff=True, is_superuser=True
    )
    ids = ["Casexyz", "CASEXYZ", "cASEXYZ", "casexyz"]

    def create(index: int) -> int:
        client = Client()
        if index == len(ids) - 1:
            return client.post(
                "/api/v1/auth/register",
                {"id": ids[index], "password": "a-long-enough-pass"},
                content_type="application/json",
            ).status_code
        client.force_login(operator)
        return _add(client, ids[index]).status_code

    for _ in range(3):
        answers = run_at_once(len(ids), create)

        assert all(isinstance(answer, int) for answer in answers), answers
        assert get_user_model().objects.filter(username__iexact="casexyz").count() == 1
        get_user_model().objects.filter(username__iexact="casexyz").delete()
