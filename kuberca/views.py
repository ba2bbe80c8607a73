"""Health, readiness and metrics endpoints (SPEC §7 Health), and the API docs page."""

import logging
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularSwaggerView
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from kuberca import errors
from kuberca import metrics as kuberca_metrics
from kuberca.credentials import bearer_ok

logger = logging.getLogger(__name__)

View = Callable[[HttpRequest], HttpResponse]


def get_only(view: View) -> View:
    """Take GET (and HEAD, its headers alone); any other method is a JSON 405.

    Exempt from CSRF: these views change nothing, and the check would answer
    a POST with Django's HTML 403 before the 405 could.
    """

    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            return errors.json_405(request, ["GET", "HEAD"])
        return view(request)

    return wrapper


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        logger.warning("health check: database unreachable")
        return False
    return True


def optional_parts_off() -> list[str]:
    """Name the optional parts (SPEC §1) that are not configured."""
    off = []
    if not settings.SLACK_ENABLED:
        off.append("slack")
    if not settings.AGENT_ENABLED:
        off.append("agent")
    if settings.EMBEDDING_PROVIDER == "none":
        off.append("embeddings")
    return off


# What turns each optional part on, for the start-up log.
PART_SETTINGS = {
    "slack": "SLACK_BOT_TOKEN,SLACK_CHANNEL_ID",
    "agent": "AGENT_URL,AGENT_ENABLED",
    "embeddings": "GEMINI_API_KEY",
}


def log_optional_parts_off(process: str) -> None:
    """Say once per process, at start, which optional parts are off (SPEC §1)."""
    for part in optional_parts_off():
        logger.info(
            "optional part off part=%s process=%s settings=%s",
            part,
            process,
            PART_SETTINGS[part],
        )


@get_only
def root(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok", "message": "kuberca is running"})


@get_only
def ping(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"message": "pong"})


@get_only
def healthz(request: HttpRequest) -> JsonResponse:
    if not _database_ok():
        return JsonResponse(
            {"status": "unavailable", "database": "unreachable"}, status=503
        )
    return JsonResponse({"status": "ok"})


# Set once this process found every migration it knows applied: they stay
# so (a release's new migrations are not in an older release's plan).
_migrated = False


def _migrations_pending() -> bool:
    """Whether the database lacks migrations this code needs.

    Raises DatabaseError when the applied migrations cannot be read (the
    database went away after answering, or the role may not read
    django_migrations): a pod that cannot tell is not ready.
    """
    global _migrated
    if _migrated:
        return False
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    _migrated = not plan
    return bool(plan)


def _unready(database: str, off: list[str]) -> JsonResponse:
    return JsonResponse(
        {"status": "unavailable", "database": database, "off": off}, status=503
    )


@get_only
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready when the database answers and has this release's migrations: a
    pod started before `migrate` would fail every write it is sent."""
    off = optional_parts_off()
    if not _database_ok():
        return _unready("unreachable", off)
    try:
        pending = _migrations_pending()
    except DatabaseError:
        logger.warning("readiness: database unreachable reading its migrations")
        return _unready("unreachable", off)
    if pending:
        logger.warning("readiness: database migrations pending; run manage.py migrate")
        return _unready("migrations pending", off)
    return JsonResponse({"status": "ok", "database": "ok", "off": off})


@get_only
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format: django-prometheus's and kuberca's own metrics.

    With METRICS_TOKEN set, the scrape needs `Authorization: Bearer <token>`
    (Prometheus' `authorization` scrape setting).
    """
    token = settings.METRICS_TOKEN
    if token and not bearer_ok(request.headers.get("Authorization", ""), token):
        return JsonResponse({"error": "unauthorized"}, status=401)
    output = generate_latest(kuberca_metrics.scrape_registry())
    return HttpResponse(output, content_type=CONTENT_TYPE_LATEST)


class DocsView(SpectacularSwaggerView):
    """The API's docs page (HTML); its errors, such as a POST's 405, are JSON
    like every other error, not an HTML page of DRF's."""

    # OPTIONS too is a 405: DRF's answer to it is data, which the page's HTML
    # renderer cannot render without a template.
    http_method_names = ["get", "head"]

    def handle_exception(self, exc: Exception) -> Response:
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return super().handle_exception(exc)
