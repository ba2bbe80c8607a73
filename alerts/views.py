"""The alert API (SPEC §7 Alerts): list, detail, reassignment, analysis.

Views stay thin: writes go through alerts.services and alerts.analysis (both
imported when called, so the routes load even where those are not deployed).
Detail routes answer errors in the `{"status": "error", ...}` envelope.
"""

import logging

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from alerts.models import Alert, AlertAnalysis, AlertQuerySet
from alerts.serializers import (
    AlertDetailSerializer,
    AlertItemSerializer,
    AlertMessageSerializer,
    AlertReassignSerializer,
)
from incidents import selectors
from incidents.serializers import EnvelopeErrorSerializer, plain_rows
from incidents.views import (
    AGENT_DISABLED,
    FILTER_PARAMETERS,
    LIST_ERRORS,
    PAGE_PARAMETERS,
    UNAUTHORIZED,
    json_object_body,
)
from kuberca.errors import DetailRouteEnvelope, DomainError, InvalidInput, NotFound
from kuberca.pagination import Page, paged_response

logger = logging.getLogger(__name__)

ITEM_FIELDS = selectors.ALERT_ITEM_FIELDS
DETAIL_FIELDS = (
    *ITEM_FIELDS,
    "analysis_summary",
    "analysis_detail",
    "fingerprint",
    "thread_ts",
    "grouping_reason",
    "annotations",
)
NOT_FOUND = OpenApiResponse(EnvelopeErrorSerializer, "Unknown alert (or incident).")
DETAIL_ERRORS = {401: UNAUTHORIZED, 404: NOT_FOUND}


class AlertIdNotFound(NotFound):
    code = "alert not found"
    default_message = "alert not found"


class ServiceUnavailable(DomainError):
    code = "service unavailable"
    http_status = status.HTTP_503_SERVICE_UNAVAILABLE
    default_message = "this operation is not available on this server"


def alert_list(filters: selectors.ListFilters) -> AlertQuerySet:
    """Visible alerts matching the filters, newest fired_at first."""
    return (
        Alert.objects.visible()
        .filter(selectors.alert_filter_q(filters))
        .order_by("-fired_at", "-alert_id")
    )


def _get_alert(alert_id: str) -> Alert:
    alert = Alert.objects.filter(pk=alert_id).first()
    if alert is None:
        raise AlertIdNotFound(alert_id=alert_id)
    return alert


@extend_schema(tags=["alerts"])
class AlertViewSet(DetailRouteEnvelope, viewsets.ViewSet):
    lookup_field = "alert_id"

    @extend_schema(
        operation_id="alerts_list",
        summary="Visible alerts, newest fired_at first",
        parameters=PAGE_PARAMETERS + FILTER_PARAMETERS,
        responses={200: AlertItemSerializer(many=True), **LIST_ERRORS},
    )
    def list(self, request: Request) -> Response:
        page = Page.from_params(request.query_params)
        filters = selectors.ListFilters.from_params(request.query_params)
        queryset = alert_list(filters)
        rows = queryset.values(*ITEM_FIELDS)[page.offset : page.offset + page.limit]
        data = plain_rows(AlertItemSerializer, rows)
        return paged_response(request, queryset, page, data)

    @extend_schema(
        operation_id="alerts_retrieve",
        summary="One alert with its analyses (returned bare)",
        responses={200: AlertDetailSerializer, **DETAIL_ERRORS},
    )
    def retrieve(self, request: Request, alert_id: str) -> Response:
        alert = _get_alert(alert_id)
        newest_per_status = (
            AlertAnalysis.objects.filter(alert_id=alert.pk)
            .order_by("status", "-created_at", "-id")
            .distinct("status")
            .only("id", "status", "summary", "detail", "created_at")
        )
        analyses = sorted(
            newest_per_status, key=lambda a: (a.created_at, a.pk), reverse=True
        )
        detail = {field: getattr(alert, field) for field in DETAIL_FIELDS}
        detail["is_analyzing"] = AlertAnalysis.objects.filter(
            alert_id=alert.pk, state__in=selectors.ANALYZING_STATES
        ).exists()
        detail["analyses"] = [
            {
                "analysis_id": a.pk,
                "status": a.status,
                "summary": a.summary,
                "detail": a.detail,
                "created_at": a.created_at,
            }
            for a in analyses
        ]
        return Response(AlertDetailSerializer(detail).data)

    @extend_schema(
        operation_id="alerts_reassign",
        summary="Move an alert to another incident",
        description="Later deliveries never move it back (grouping_reason moved).",
        request=AlertReassignSerializer,
        responses={
            200: AlertMessageSerializer,
            400: OpenApiResponse(EnvelopeErrorSerializer, "Missing incident_id."),
            **DETAIL_ERRORS,
        },
    )
    def reassign(self, request: Request, alert_id: str) -> Response:
        body = json_object_body(request)
        incident_id = body.get("incident_id")
        if incident_id is not None and not isinstance(incident_id, str):
            raise InvalidInput("incident_id must be a string", field="incident_id")
        if incident_id is None or not incident_id.strip():
            raise InvalidInput("incident_id is required", field="incident_id")
        try:
            from alerts.services import alert_move
        except ImportError:
            raise ServiceUnavailable() from None
        alert = alert_move(
            alert_id=alert_id,
            incident_id=incident_id.strip(),
            moved_by=request.user.get_username(),
        )
        return Response(
            {"status": "success", "message": "alert moved", "alert_id": alert.pk}
        )

    @extend_schema(
        operation_id="alerts_analyze",
        summary="Ask the Agent to analyse an alert again",
        request=None,
        responses={
            202: AlertMessageSerializer,
            403: AGENT_DISABLED,
            503: OpenApiResponse(EnvelopeErrorSerializer, "Analysis not available."),
            **DETAIL_ERRORS,
        },
    )
    def analyze(self, request: Request, alert_id: str) -> Response:
        alert = _get_alert(alert_id)
        try:
            from alerts.analysis import analysis_request_alert
        except ImportError:
            raise ServiceUnavailable() from None
        analysis_request_alert(alert.pk)
        logger.info(
            "alert analysis requested alert_id=%s by=%s",
            alert.pk,
            request.user.get_username(),
        )
        return Response(
            {
                "status": "success",
                "message": "analysis requested",
                "alert_id": alert.pk,
            },
            status=status.HTTP_202_ACCEPTED,
        )
