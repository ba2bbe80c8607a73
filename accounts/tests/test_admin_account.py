import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from accounts.services import admin_ensure
from accounts.tests.factories import UserFactory
from kuberca.env import ConfigError

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_settings(settings):
    settings.ADMIN_USERNAME = "root"
    settings.ADMIN_PASSWORD = "first-admin-password"
    return settings


def test_ensure_admin_creates_superuser_from_settings(admin_settings):
    account = admin_ensure()

    assert account is not None and account.created
    user = get_user_model().objects.get(username="root")
    assert user.is_superuser and user.is_staff and user.is_active
    assert user.check_password("first-admin-password")


def test_ensure_admin_creates_it_only_once(admin_settings):
    admin_ensure()

    again = admin_ensure()

    assert again is not None and not again.created
    assert get_user_model().objects.filter(username="root").count() == 1


def test_ensure_admin_never_changes_an_existing_password(admin_settings):
    UserFactory(username="root", password="changed-by-the-operator")

    account = admin_ensure()

    assert account is not None and not account.created
    user = get_user_model().objects.get(username="root")
    assert user.check_password("changed-by-the-operator")
    assert not user.check_password("first-admin-password")


@pytest.mark.parametrize(
    "username",
    [
        "ab",
        "x" * 65,
        "ad\x01min",
        "ad\x00min",
        "ad\nmin",
        "ad\x1b[2Jmin",
        "\ufdfa" * 3,  # holds spaces once NFKC-normalised, as Django stores it
        "\ufdfa" * 64,  # past 64 (and the column's 150) once normalised
    ],
)
def test_ensure_admin_rejects_a_username_the_api_refuses(admin_settings, username):
    admin_settings.ADMIN_USERNAME = username

    with pytest.raises(ConfigError, match="^ADMIN_USERNAME=") as raised:
        admin_ensure()

    assert "\n" not in str(raised.value)
    assert not get_user_model().objects.exists()


@pytest.mark.parametrize("password", ["x" * 7, "x" * 129])
def test_ensure_admin_rejects_a_password_the_api_refuses(admin_settings, password):
    admin_settings.ADMIN_PASSWORD = password

    with pytest.raises(ConfigError, match="^ADMIN_PASSWORD=") as raised:
        admin_ensure()

    assert password not in str(raised.value)
    assert not get_user_model().objects.exists()


@pytest.mark.parametrize(
    ("username", "password"), [("abc", "x" * 8), ("x" * 64, "x" * 128)]
)
def test_ensure_admin_takes_the_shortest_and_longest_the_api_takes(
    admin_settings, post_json, username, password
):
    admin_settings.ADMIN_USERNAME = username
    admin_settings.ADMIN_PASSWORD = password

    assert admin_ensure().created

    response = post_json("/api/v1/auth/login", {"id": username, "password": password})
    assert response.status_code == 200


def test_ensure_admin_takes_a_full_width_username_as_it_is_stored(admin_settings):
    admin_settings.ADMIN_USERNAME = "ｒｏｏｔ"

    first, again = admin_ensure(), admin_ensure()

    assert first.created and first.username == "root"
    assert not again.created and again.username == "root"
    assert list(get_user_model().objects.values_list("username", flat=True)) == ["root"]


def test_ensure_admin_without_settings_does_nothing(settings):
    settings.ADMIN_USERNAME = ""
    settings.ADMIN_PASSWORD = ""

    assert admin_ensure() is None
    assert not get_user_model().objects.exists()


def test_ensure_admin_generates_development_password_file(settings, tmp_path):
    settings.ADMIN_USERNAME = ""
    settings.ADMIN_PASSWORD = ""
    password_file = tmp_path / "var" / "admin_password"

    account = admin_ensure(password_file=password_file)

    assert account is not None and account.created and account.username == "admin"
    password = password_file.read_text().strip()
    assert password == account.password and len(password) >= 16
    assert password_file.stat().st_mode & 0o777 == 0o600
    assert get_user_model().objects.get(username="admin").check_password(password)


def test_generated_password_is_kept_on_the_next_start(settings, tmp_path):
    settings.ADMIN_USERNAME = ""
    settings.ADMIN_PASSWORD = ""
    password_file = tmp_path / "admin_password"
    first = admin_ensure(password_file=password_file)

    second = admin_ensure(password_file=password_file)

    assert second is not None and not second.created
    assert second.password == first.password
    assert get_user_model().objects.filter(is_superuser=True).count() == 1


def test_a_new_database_keeps_the_password_already_written_down(
    settings,  # noqa: ANN001
    tmp_path,  # noqa: ANN001
) -> None:
    settings.ADMIN_USERNAME = ""
    settings.ADMIN_PASSWORD = ""
    password_file = tmp_path / "admin_password"
    password_file.write_text("kept-from-before-1\n")

    account = admin_ensure(password_file=password_file)

    assert account is not None and account.created
    assert account.password == "kept-from-before-1"
    assert (
        get_user_model()
        .objects.get(username="admin")
        .check_password("kept-from-before-1")
    )
    assert password_file.read_text() == "kept-from-before-1\n"


def test_a_written_down_password_login_would_refuse_is_replaced(settings, tmp_path):  # noqa: ANN001
    settings.ADMIN_USERNAME = ""
    settings.ADMIN_PASSWORD = ""
    password_file = tmp_path / "admin_password"
    password_file.write_text("short\n")

    account = admin_ensure(password_file=password_file)

    assert account is not None and len(account.password) >= 16
    assert password_file.read_text().strip() == account.password


def test_no_password_is_generated_when_a_superuser_exists(settings, tmp_path):
    settings.ADMIN_USERNAME = ""
    settings.ADMIN_PASSWORD = ""
    UserFactory(username="operator", superuser=True)
    password_file = tmp_path / "admin_password"

    assert admin_ensure(password_file=password_file) is None
    assert not password_file.exists()


def test_ensure_admin_command_reports_what_it_did(admin_settings, capsys):
    call_command("ensure_admin")
    call_command("ensure_admin")

    out = capsys.readouterr().out
    assert "admin user root created" in out
    assert "admin user root exists" in out
    assert "first-admin-password" not in out


def test_ensure_admin_command_generate_uses_var_dir(settings, tmp_path, capsys):
    settings.ADMIN_USERNAME = ""
    settings.ADMIN_PASSWORD = ""
    settings.VAR_DIR = tmp_path

    call_command("ensure_admin", generate=True)

    assert (tmp_path / "admin_password").exists()
    assert "admin user admin created" in capsys.readouterr().out


def test_ensured_admin_can_log_in_to_admin_site(admin_settings):
    # Tests run without collectstatic, so pages link unhashed static files.
    admin_settings.STORAGES = {
        **admin_settings.STORAGES,
        "staticfiles": {
            "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        },
    }
    admin_ensure()
    client = Client()

    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": "root", "password": "first-admin-password", "next": "/admin/"},
    )

    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_ensured_admin_can_log_in_to_the_api(admin_settings, post_json):
    admin_ensure()

    response = post_json(
        "/api/v1/auth/login", {"id": "root", "password": "first-admin-password"}
    )

    assert response.status_code == 200


def test_ensure_admin_takes_a_case_variant_for_the_existing_account(
    admin_settings,  # noqa: ANN001
    caplog,  # noqa: ANN001
) -> None:
    UserFactory(username="root", password="changed-by-the-operator")
    admin_settings.ADMIN_USERNAME = "Root"

    account = admin_ensure()

    assert account is not None and not account.created
    assert account.username == "root"
    assert list(get_user_model().objects.values_list("username", flat=True)) == ["root"]
    assert "login id taken in another case" in caplog.text


def test_ensure_admin_generates_none_over_an_ordinary_users_case_variant(
    settings,  # noqa: ANN001
    tmp_path,  # noqa: ANN001
) -> None:
    # No superuser, but "Admin" is someone's login id: "admin" would be a
    # second account of the same id, and its password is never shown.
    settings.ADMIN_USERNAME = settings.ADMIN_PASSWORD = ""
    UserFactory(username="Admin")
    password_file = tmp_path / "admin_password"

    assert admin_ensure(password_file=password_file) is None
    assert not password_file.exists()
    assert get_user_model().objects.count() == 1
