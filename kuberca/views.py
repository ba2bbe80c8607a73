"""Health, readiness and metrics endpoints (SPEC §7 Health)."""

import hmac
import logging

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kuberca import metrics as kuberca_metrics

logger = logging.getLogger(__name__)


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


@require_GET
def root(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok", "message": "kuberca is running"})


@require_GET
def ping(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"message": "pong"})


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    if not _database_ok():
        return JsonResponse(
            {"status": "unavailable", "database": "unreachable"}, status=503
        )
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    off = optional_parts_off()
    if not _database_ok():
        return JsonResponse(
            {"status": "unavailable", "database": "unreachable", "off": off}, status=503
        )
    return JsonResponse({"status": "ok", "database": "ok", "off": off})


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format: django-prometheus's and kuberca's own metrics.

    With METRICS_TOKEN set, the scrape needs `Authorization: Bearer <token>`
    (Prometheus' `authorization` scrape setting).
    """
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        scheme, _, credentials = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            credentials.strip().encode(), token.encode()
        ):
            return JsonResponse({"error": "unauthorized"}, status=401)
    output = generate_latest(kuberca_metrics.scrape_registry())
    return HttpResponse(output, content_type=CONTENT_TYPE_LATEST)
