"""Routes under /api/v1/incidents (mounted without a trailing slash).

Each pattern takes the path with or without a trailing slash, since
APPEND_SLASH is off and the frontend calls both forms. `hidden` and `mock`
come before the id pattern so they are never read as incident ids.
"""

from django.urls import re_path

from incidents.views import IncidentViewSet

ID = r"(?P<incident_id>[^/]+)"

urlpatterns = [
    re_path(r"^/?$", IncidentViewSet.as_view({"get": "list"}), name="incident-list"),
    re_path(
        r"^/hidden/?$",
        IncidentViewSet.as_view({"get": "hidden"}),
        name="incident-hidden",
    ),
    re_path(
        r"^/mock/?$",
        IncidentViewSet.as_view({"post": "mock"}),
        name="incident-mock",
    ),
    re_path(
        rf"^/{ID}/?$",
        IncidentViewSet.as_view({"get": "retrieve", "put": "update", "patch": "hide"}),
        name="incident-detail",
    ),
    re_path(
        rf"^/{ID}/unhide/?$",
        IncidentViewSet.as_view({"patch": "unhide"}),
        name="incident-unhide",
    ),
    re_path(
        rf"^/{ID}/resolve/?$",
        IncidentViewSet.as_view({"post": "resolve"}),
        name="incident-resolve",
    ),
    re_path(
        rf"^/{ID}/alerts/?$",
        IncidentViewSet.as_view({"get": "alerts"}),
        name="incident-alerts",
    ),
    re_path(
        rf"^/{ID}/analyze/?$",
        IncidentViewSet.as_view({"post": "analyze"}),
        name="incident-analyze",
    ),
]
