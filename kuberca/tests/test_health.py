import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from openapi_spec_validator import validate

pytestmark = pytest.mark.django_db

BASE = Path(__file__).resolve().parents[2]


def test_root_says_it_is_running(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "message": "kuberca is running"}


def test_ping_answers_pong(client):
    assert client.get("/ping").json() == {"message": "pong"}


def test_healthz_reports_ok_with_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_lists_optional_parts_that_are_off(client, settings):
    settings.SLACK_ENABLED = False
    settings.EMBEDDING_PROVIDER = "none"
    body = client.get("/readyz").json()
    assert body["status"] == "ok"
    assert "slack" in body["off"]
    assert "embeddings" in body["off"]


@pytest.mark.parametrize(
    ("slack", "embeddings", "process", "logged"),
    [
        (
            False,
            "none",
            "web",
            [
                "optional part off part=slack process=web"
                " settings=SLACK_BOT_TOKEN,SLACK_CHANNEL_ID",
                "optional part off part=embeddings process=web settings=GEMINI_API_KEY",
            ],
        ),
        (True, "gemini", "worker", []),
    ],
)
def test_start_up_log_names_each_optional_part_that_is_off(
    settings, caplog, slack, embeddings, process, logged
):
    from kuberca.views import log_optional_parts_off

    settings.SLACK_ENABLED = slack
    settings.AGENT_ENABLED = True
    settings.EMBEDDING_PROVIDER = embeddings

    with caplog.at_level("INFO", logger="kuberca.views"):
        log_optional_parts_off(process)

    assert [r.getMessage() for r in caplog.records] == logged


def test_readyz_is_unavailable_without_database(client, monkeypatch):
    from kuberca import views

    monkeypatch.setattr(views, "_database_ok", lambda: False)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"


def test_readyz_is_unavailable_while_migrations_are_pending(client, monkeypatch):
    from django.db import connection

    from kuberca import views

    monkeypatch.setattr(views, "_migrated", False)
    with connection.cursor() as cursor:
        # Rolled back with the test's transaction.
        cursor.execute(
            "DELETE FROM django_migrations WHERE app = 'alerts' AND name = "
            "(SELECT max(name) FROM django_migrations WHERE app = 'alerts')"
        )

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["database"] == "migrations pending"
    assert views._migrated is False


def test_readyz_is_unavailable_when_the_migrations_cannot_be_read(client, monkeypatch):
    from django.db import connection

    from kuberca import views

    monkeypatch.setattr(views, "_migrated", False)
    with connection.cursor() as cursor:
        # A role that reaches the database but may not read django_migrations
        # (rolled back, SET ROLE included, with the test's transaction).
        cursor.execute("CREATE ROLE kuberca_readyz_probe NOLOGIN")
        cursor.execute("SET ROLE kuberca_readyz_probe")

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert views._migrated is False


def test_readyz_is_ready_once_migrated_and_keeps_it(client, monkeypatch):
    from kuberca import views

    monkeypatch.setattr(views, "_migrated", False)
    assert client.get("/readyz").json()["database"] == "ok"
    assert views._migrated is True


def test_unknown_path_is_json_404(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"] == "not found"


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
@pytest.mark.parametrize("path", ["/", "/ping", "/healthz", "/readyz", "/metrics"])
def test_get_only_path_rejects_other_methods_with_json_405(path, method):
    # A real browser or client: Django's test client skips the CSRF check.
    response = getattr(Client(enforce_csrf_checks=True), method)(path)
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"] == "method not allowed"


def test_docs_page_loads_swagger_ui_from_our_own_static_files(
    client, plain_static_storage
):
    page = client.get("/api/docs/").content.decode()

    assert "cdn.jsdelivr.net" not in page and "unpkg.com" not in page
    scripts = re.findall(r'src="([^"]+\.js)"', page)
    assert scripts, page
    for src in scripts:
        assert src.startswith("/static/drf_spectacular_sidecar/"), src
        served = client.get(src)
        assert served.status_code == 200, src
        assert b"".join(served.streaming_content)


@pytest.mark.parametrize("method", ["post", "put", "delete", "options"])
def test_docs_page_answers_other_methods_with_json_405(client, method):
    page = client.get("/api/docs/")
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")

    response = getattr(Client(enforce_csrf_checks=True), method)("/api/docs/")
    assert response.status_code == 405
    assert response["Content-Type"].startswith("application/json")
    assert "not allowed" in response.json()["error"]


@pytest.mark.parametrize("method", ["post", "put", "delete"])
@pytest.mark.parametrize("path", ["/api/v1/nope", "/no/such/page", "/webhook/nope"])
def test_unknown_path_is_json_404_for_any_method(path, method):
    response = getattr(Client(enforce_csrf_checks=True), method)(path)
    assert response.status_code == 404
    assert response.json() == {"error": "not found", "path": path}


def test_csrf_failure_outside_the_admin_is_json_403():
    from django.http import HttpResponse
    from django.urls import path

    from kuberca import urls

    urls.urlpatterns.insert(0, path("form-for-test", lambda request: HttpResponse()))
    try:
        response = Client(enforce_csrf_checks=True).post("/form-for-test")
    finally:
        urls.urlpatterns.pop(0)
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert "CSRF" in response.json()["detail"]


def test_csrf_failure_in_the_admin_keeps_django_page_for_the_browser():
    response = Client(enforce_csrf_checks=True).post(
        "/admin/login/", {"username": "x", "password": "y"}
    )
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")
    assert b"CSRF verification failed" in response.content


def test_openapi_document_is_valid_openapi_3(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    validate(document)


def test_request_id_is_echoed(client):
    response = client.get("/ping", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-ID"] == "abc-123"


def test_request_id_is_generated_when_missing_or_unsafe(client):
    response = client.get("/ping", HTTP_X_REQUEST_ID="bad id\nwith newline")
    assert response["X-Request-ID"] != "bad id\nwith newline"
    assert len(response["X-Request-ID"]) == 32


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEBUG", "maybe"),
        ("JWT_ACCESS_TTL", "soon"),
        ("WEBHOOK_MAX_BYTES", "lots"),
        ("WEBHOOK_RETENTION_DAYS", "999999999"),
        ("TASK_RETENTION_DAYS", "99999999"),
        ("INCIDENT_RETENTION_DAYS", "999999999"),
        # last_seen_at is kept to the minute: the sweep would flap.
        ("ALERT_STALE_AFTER", "30s"),
    ],
)
def test_bad_setting_stops_startup_with_one_line_naming_it(variable, value):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=BASE,
        env={**_env(), variable: value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert variable in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_secret_key_without_debug_stops_startup():
    env = {**_env(), "DEBUG": "false", "DATABASE_URL": "postgres://u:p@127.0.0.1:1/x"}
    env.pop("SECRET_KEY", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=BASE,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items()}


def test_unknown_path_is_json_404_in_debug_too(client, settings):
    settings.DEBUG = True
    response = client.get("/api/v1/nothing/here")
    assert response.status_code == 404
    assert response.json()["error"] == "not found"


def test_asterisk_form_options_is_json_404_in_debug_too(settings):
    # `OPTIONS * HTTP/1.1`: gunicorn hands over PATH_INFO "*", which no route
    # can match; with DEBUG on, Django's 404 would be its HTML page.
    from kuberca.testing import wsgi

    settings.DEBUG = True
    answer = wsgi.call("OPTIONS", "*")
    assert answer.status == 404
    assert answer.headers["Content-Type"].startswith("application/json")
    assert b"<html" not in answer.body


@pytest.mark.parametrize(
    "path", ["/nothing%0Ahere", "/api/v1/%0D%0Ax", "/%0A", "/static/x%0A"]
)
def test_unknown_path_with_a_line_break_is_json_404_in_debug_too(
    client, settings, path
):
    settings.DEBUG = True
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"] == "not found"


@pytest.mark.parametrize(
    "path", ["/static/no/such/file.css", "/static/%FF", "/static/../settings.py"]
)
def test_missing_static_file_is_json_404_in_debug_too(client, settings, path):
    # `make run` has DEBUG on: Django's HTML 404 page would list every route.
    settings.DEBUG = True
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"] == "not found"


def test_unhandled_error_is_json_500_without_traceback(client, settings):
    from django.urls import path

    from kuberca import urls

    def boom(request):
        raise RuntimeError("secret internals")

    settings.DEBUG = True
    urls.urlpatterns.insert(0, path("boom-for-test", boom))
    try:
        client.raise_request_exception = False
        response = client.get("/boom-for-test")
    finally:
        urls.urlpatterns.pop(0)
    assert response.status_code == 500
    assert response.json() == {"error": "internal error"}
    assert b"secret internals" not in response.content


@pytest.mark.parametrize("path", ["/", "/ping", "/healthz", "/readyz", "/metrics"])
def test_health_routes_answer_head_like_get(client, path):
    response = client.head(path)
    assert response.status_code == 200
    assert response.content == b""


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/auth/config"])
def test_head_reaches_the_server_without_a_body(path):
    # Through the WSGI application as gunicorn calls it: Django's test client
    # drops a HEAD's body itself, and would hide one sent.
    from kuberca.testing import wsgi

    got = wsgi.call("GET", path)
    head = wsgi.call("HEAD", path)

    assert head.status == got.status == 200
    assert head.body == b""
    assert head.headers["Content-Length"] == str(len(got.body))
    assert head.headers["Content-Type"] == got.headers["Content-Type"]
