"""Start-up with the settings of docs/production-settings.md.

`manage.py check --deploy` passes with them; a bad value among them stops
`manage.py` with one line naming the variable.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
from django.conf import settings
from django.core.checks import run_checks

from kuberca.env import ConfigError

BASE_DIR = Path(settings.BASE_DIR)

# Keep in step with docs/production-settings.md.
PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "q8Zr3vN0xLw7pT2sKc9hJ4mB6yD1fG5aE8uR0iO3nV7bX2zW4kS9lQ6tY1pM5cH",
    "JWT_SECRET": "Vt5nK2qX8wL0rZ7cB4mJ9yH3sF6dG1aP8eT0uN5iO2kR7xW4bQ9lC6vY3zM1jS",
    "ALLOWED_HOSTS": "kuberca.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://kuberca.example.com",
    "CORS_ALLOWED_ORIGINS": "https://kuberca.example.com",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_PROXY_SSL_HEADER": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
    "AUTH_COOKIE_SECURE": "true",
    "AUTH_COOKIE_SAMESITE": "Lax",
    # Never contacted: `check` does not open the database.
    "DATABASE_URL": "postgresql://kuberca@127.0.0.1:1/kuberca",
}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {
        key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ
    }
    return subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), *args],
        cwd=BASE_DIR,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_passes_with_documented_production_settings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_warns_without_hsts_and_with_weak_jwt_secret():
    env = {**PRODUCTION_ENV, "JWT_SECRET": "short", "SECURE_HSTS_SECONDS": "0"}

    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=env)

    assert result.returncode != 0
    assert "security.W004" in result.stderr
    assert "accounts.W001" in result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("JWT_ACCESS_TTL", "0"),
        ("JWT_ACCESS_TTL", "2d"),
        ("JWT_REFRESH_TTL", "0"),
        ("JWT_REFRESH_TTL", "99999999d"),
    ],
)
def test_token_lifetime_out_of_bounds_stops_start_up(name, value):
    result = _manage("check", env={**PRODUCTION_ENV, name: value})

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"kuberca: configuration error: {name}={value!r} is not valid: expected "
        f"a duration such as 15m, 168h, 7d or 900, at least 1s, "
        f"at most {'1d' if name == 'JWT_ACCESS_TTL' else '365d'}"
    ]


@pytest.mark.parametrize(
    ("username", "password", "named"),
    [
        ("ab", "first-admin-password", "ADMIN_USERNAME"),
        ("root", "short", "ADMIN_PASSWORD"),
    ],
)
def test_ensure_admin_with_a_bad_admin_setting_fails_with_one_line(
    username, password, named
):
    # Refused before the database is opened, which PRODUCTION_ENV never is.
    env = {**PRODUCTION_ENV, "ADMIN_USERNAME": username, "ADMIN_PASSWORD": password}

    result = _manage("ensure_admin", env=env)

    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"kuberca: configuration error: {named}=")
    assert password not in line


def test_bad_login_rate_names_the_variable(monkeypatch):
    from kuberca.settings import _login_rate

    monkeypatch.setenv("LOGIN_THROTTLE_PER_CLIENT", "lots")

    with pytest.raises(ConfigError, match="LOGIN_THROTTLE_PER_CLIENT"):
        _login_rate("LOGIN_THROTTLE_PER_CLIENT", "20/min")


def test_a_login_rate_of_a_bare_zero_is_taken_as_off(monkeypatch):
    from accounts.rates import parse_rate
    from kuberca.settings import _login_rate

    monkeypatch.setenv("LOGIN_THROTTLE_PER_CLIENT", "0")

    assert parse_rate(_login_rate("LOGIN_THROTTLE_PER_CLIENT", "20/min")).count == 0


def test_insecure_refresh_cookie_is_a_deploy_warning(settings):
    settings.AUTH_COOKIE_SECURE = False

    ids = {message.id for message in run_checks(include_deployment_checks=True)}

    assert "accounts.W002" in ids


def test_same_site_none_without_secure_refuses_to_start():
    env = {**PRODUCTION_ENV, "AUTH_COOKIE_SAMESITE": "None", "AUTH_COOKIE_SECURE": "0"}

    result = _manage("check", env=env)

    assert result.returncode == 2
    assert "AUTH_COOKIE_SAMESITE" in result.stderr


def test_tokens_are_signed_with_jwt_secret_rather_than_secret_key():
    claims = {
        "token_type": "access",
        "exp": int(time.time()) + 300,
        "iat": int(time.time()),
        "jti": "0123456789abcdef",
        "user_id": "1",
    }
    signed = {
        name: jwt.encode(claims, PRODUCTION_ENV[name], algorithm="HS256")
        for name in ("JWT_SECRET", "SECRET_KEY")
    }
    code = f"""
import json
from accounts.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.tokens import AccessToken

accepted = {{}}
for name, raw in {signed!r}.items():
    try:
        JWTAuthentication().get_validated_token(raw.encode())
    except InvalidToken:
        accepted[name] = False
    else:
        accepted[name] = True
print(json.dumps({{"accepted": accepted, "issued": str(AccessToken())}}))
"""

    result = _manage("shell", "--no-imports", "-c", code, env=PRODUCTION_ENV)

    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["accepted"] == {"JWT_SECRET": True, "SECRET_KEY": False}
    issued = jwt.decode(
        answer["issued"], PRODUCTION_ENV["JWT_SECRET"], algorithms=["HS256"]
    )
    assert issued["token_type"] == "access"
