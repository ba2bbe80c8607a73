"""The incident API (SPEC §7 Incidents): lists, detail, edits, state changes.

Views stay thin: they read parameters, call incidents.services or
incidents.selectors, and shape the answer with incidents.serializers. Detail
routes answer errors in the `{"status": "error", "message", "error"}` envelope.
"""

import logging
from typing import Any

from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from incidents import events, selectors, services
from incidents.models import Incident
from incidents.serializers import (
    AlertItemSerializer,
    EnvelopeErrorSerializer,
    IncidentDetailEnvelopeSerializer,
    IncidentDetailSerializer,
    IncidentListItemSerializer,
    IncidentMessageSerializer,
    IncidentResolveSerializer,
    IncidentUpdateSerializer,
    ListErrorSerializer,
    SuccessMessageSerializer,
    UnauthorizedSerializer,
    plain_rows,
)
from kuberca.errors import DetailRouteEnvelope, InvalidInput
from kuberca.pagination import MAX_LIMIT, MAX_OFFSET, Page, paged_response

logger = logging.getLogger(__name__)

# Parameters and headers of every list route, documented once.
PAGE_PARAMETERS = [
    OpenApiParameter(
        "limit",
        {"type": "integer", "minimum": 0},
        description=f"Rows per page (default 500, above {MAX_LIMIT} counts as "
        f"{MAX_LIMIT}).",
    ),
    OpenApiParameter(
        "offset",
        {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
        description="Rows to skip (default 0).",
    ),
    OpenApiParameter(
        "X-Total-Count",
        int,
        location=OpenApiParameter.HEADER,
        response=[200],
        description="Rows matching the filters, all pages together.",
    ),
    OpenApiParameter(
        "Link",
        str,
        location=OpenApiParameter.HEADER,
        response=[200],
        description='`<url>; rel="next"` when more rows exist.',
    ),
]
FILTER_PARAMETERS = [
    OpenApiParameter("status", str, enum=["firing", "resolved"]),
    OpenApiParameter(
        "severity",
        str,
        description="critical, warning or info; several comma-separated or repeated.",
    ),
    OpenApiParameter("namespace", str, description="Kubernetes namespace."),
    OpenApiParameter("q", str, description="Text in the title, or an exact id."),
    OpenApiParameter(
        "since", OpenApiTypes.DATETIME, description="fired_at at or after (RFC 3339)."
    ),
    OpenApiParameter(
        "until",
        OpenApiTypes.DATETIME,
        description="fired_at at or before (RFC 3339); a whole second takes in "
        "all of that second, as times are shown.",
    ),
]
INCIDENT_ID = OpenApiParameter(
    "incident_id",
    str,
    OpenApiParameter.PATH,
    pattern=r"^INC-[0-9a-f]{8,}$",
    description="`INC-` and lowercase hex (`hidden` and `mock` are other routes).",
)
UNAUTHORIZED = OpenApiResponse(UnauthorizedSerializer, "Missing or bad access token.")
LIST_ERRORS = {
    400: OpenApiResponse(
        ListErrorSerializer, "A bad query parameter, named in detail."
    ),
    401: UNAUTHORIZED,
}
NOT_FOUND = OpenApiResponse(EnvelopeErrorSerializer, "Unknown incident id.")
BAD_BODY = OpenApiResponse(EnvelopeErrorSerializer, "Malformed body or bad field.")
DETAIL_ERRORS = {401: UNAUTHORIZED, 404: NOT_FOUND}
AGENT_DISABLED = OpenApiResponse(
    EnvelopeErrorSerializer, "`agent disabled`: no Agent is configured (AGENT_URL)."
)


def _get_incident(incident_id: str) -> Incident:
    incident = Incident.objects.filter(pk=incident_id).first()
    if incident is None:
        raise services.IncidentNotFound(incident_id=incident_id)
    return incident


def json_object_body(request: Request) -> dict[str, Any]:
    data = request.data
    if not isinstance(data, dict):
        raise InvalidInput("body must be a JSON object")
    return data


@extend_schema(tags=["incidents"])
class IncidentViewSet(DetailRouteEnvelope, viewsets.ViewSet):
    lookup_field = "incident_id"

    def _list(self, request: Request, *, hidden: bool) -> Response:
        page = Page.from_params(request.query_params)
        filters = selectors.ListFilters.from_params(request.query_params)
        queryset = selectors.incident_list(hidden=hidden, filters=filters)
        rows = selectors.incident_list_page(queryset)[
            page.offset : page.offset + page.limit
        ]
        data = plain_rows(IncidentListItemSerializer, rows)
        return paged_response(request, queryset, page, data)

    @extend_schema(
        operation_id="incidents_list",
        summary="Visible incidents, newest fired_at first",
        parameters=PAGE_PARAMETERS + FILTER_PARAMETERS,
        responses={200: IncidentListItemSerializer(many=True), **LIST_ERRORS},
    )
    def list(self, request: Request) -> Response:
        return self._list(request, hidden=False)

    @extend_schema(
        operation_id="incidents_hidden_list",
        summary="Hidden incidents, newest fired_at first",
        parameters=PAGE_PARAMETERS + FILTER_PARAMETERS,
        responses={200: IncidentListItemSerializer(many=True), **LIST_ERRORS},
    )
    def hidden(self, request: Request) -> Response:
        return self._list(request, hidden=True)

    @extend_schema(
        operation_id="incidents_retrieve",
        parameters=[INCIDENT_ID],
        summary="One incident (hidden ones too) with its alerts",
        responses={200: IncidentDetailEnvelopeSerializer, **DETAIL_ERRORS},
    )
    def retrieve(self, request: Request, incident_id: str) -> Response:
        incident = _get_incident(incident_id)
        alerts = selectors.incident_alerts(incident.pk).values(
            *selectors.ALERT_ITEM_FIELDS
        )
        detail = {
            field: getattr(incident, field)
            for field in (
                "incident_id",
                "title",
                "severity",
                "status",
                "fired_at",
                "resolved_at",
                "analysis_summary",
                "analysis_detail",
                "created_by",
                "resolved_by",
            )
        }
        detail["is_analyzing"] = selectors.incident_is_analyzing(incident)
        detail["similar_incidents"] = selectors.similar_incidents(incident, limit=5)
        data = IncidentDetailSerializer(detail).data
        data["alerts"] = plain_rows(AlertItemSerializer, alerts)
        if not data["alerts"]:
            del data["alerts"]
        return Response({"status": "success", "data": data})

    @extend_schema(
        operation_id="incidents_update",
        parameters=[INCIDENT_ID],
        summary="Edit title, severity or analysis text",
        description=(
            "Keys left out keep their value; other keys (the rest of the detail "
            "object the frontend sends back) are ignored."
        ),
        request=IncidentUpdateSerializer,
        responses={200: IncidentMessageSerializer, 400: BAD_BODY, **DETAIL_ERRORS},
    )
    def update(self, request: Request, incident_id: str) -> Response:
        incident = services.incident_update(
            incident_id=incident_id, data=json_object_body(request)
        )
        return Response(
            {
                "status": "success",
                "message": "incident updated",
                "incident_id": incident.pk,
            }
        )

    @extend_schema(
        operation_id="incidents_hide",
        parameters=[INCIDENT_ID],
        summary="Hide an incident",
        description="It leaves the lists; new alerts of its key open a new one.",
        request=None,
        responses={200: SuccessMessageSerializer, **DETAIL_ERRORS},
    )
    def hide(self, request: Request, incident_id: str) -> Response:
        services.incident_hide(incident_id=incident_id)
        return Response({"status": "success", "message": "incident hidden"})

    @extend_schema(
        operation_id="incidents_unhide",
        parameters=[INCIDENT_ID],
        summary="Show a hidden incident again",
        request=None,
        responses={200: SuccessMessageSerializer, **DETAIL_ERRORS},
    )
    def unhide(self, request: Request, incident_id: str) -> Response:
        services.incident_unhide(incident_id=incident_id)
        return Response({"status": "success", "message": "incident unhidden"})

    @extend_schema(
        operation_id="incidents_resolve",
        parameters=[INCIDENT_ID],
        summary="Resolve a firing incident; the final analysis follows",
        request=IncidentResolveSerializer,
        responses={
            200: IncidentMessageSerializer,
            400: BAD_BODY,
            409: OpenApiResponse(EnvelopeErrorSerializer, "Already resolved."),
            **DETAIL_ERRORS,
        },
    )
    def resolve(self, request: Request, incident_id: str) -> Response:
        body = json_object_body(request)
        resolved_by = body.get("resolved_by")
        if resolved_by is not None and not isinstance(resolved_by, str):
            raise InvalidInput("resolved_by must be a string", field="resolved_by")
        incident = services.incident_resolve(
            incident_id=incident_id,
            resolved_by=(resolved_by or "").strip() or request.user.get_username(),
        )
        return Response(
            {
                "status": "success",
                "message": "incident resolved",
                "incident_id": incident.pk,
            }
        )

    @extend_schema(
        operation_id="incidents_alerts_list",
        summary="The alerts of an incident, newest fired_at first",
        parameters=[INCIDENT_ID, *PAGE_PARAMETERS, *FILTER_PARAMETERS],
        responses={
            200: AlertItemSerializer(many=True),
            400: OpenApiResponse(EnvelopeErrorSerializer, "A bad query parameter."),
            **DETAIL_ERRORS,
        },
    )
    def alerts(self, request: Request, incident_id: str) -> Response:
        page = Page.from_params(request.query_params)
        filters = selectors.ListFilters.from_params(request.query_params)
        incident = _get_incident(incident_id)
        queryset = selectors.incident_alerts(incident.pk).filter(
            selectors.alert_filter_q(filters)
        )
        rows = queryset.values(*selectors.ALERT_ITEM_FIELDS)[
            page.offset : page.offset + page.limit
        ]
        data = plain_rows(AlertItemSerializer, rows)
        return paged_response(request, queryset, page, data)

    @extend_schema(
        operation_id="incidents_analyze",
        parameters=[INCIDENT_ID],
        summary="Ask for the final analysis of an incident again",
        request=None,
        responses={
            202: IncidentMessageSerializer,
            403: AGENT_DISABLED,
            **DETAIL_ERRORS,
        },
    )
    def analyze(self, request: Request, incident_id: str) -> Response:
        with transaction.atomic():
            incident = _get_incident(incident_id)
            events.incident_analysis_requested.send(
                sender=Incident, incident_id=incident.pk
            )
        logger.info(
            "incident analysis requested incident_id=%s by=%s",
            incident.pk,
            request.user.get_username(),
        )
        return Response(
            {
                "status": "success",
                "message": "analysis requested",
                "incident_id": incident.pk,
            },
            status=status.HTTP_202_ACCEPTED,
        )

    @extend_schema(
        operation_id="incidents_mock",
        summary="Open a firing warning test incident (ALLOW_MOCK_INCIDENTS)",
        request=None,
        responses={
            200: IncidentMessageSerializer,
            401: UNAUTHORIZED,
            403: OpenApiResponse(ListErrorSerializer, "Mock incidents are disabled."),
        },
    )
    def mock(self, request: Request) -> Response:
        incident = services.incident_create_mock(created_by=request.user.get_username())
        return Response(
            {
                "status": "success",
                "message": "mock incident created",
                "incident_id": incident.pk,
            }
        )
