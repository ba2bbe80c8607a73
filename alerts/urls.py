"""Routes under /api/v1/alerts (mounted without a trailing slash).

Each pattern takes the path with or without a trailing slash (APPEND_SLASH is
off and the frontend calls both forms).
"""

from django.urls import re_path

from alerts.views import AlertViewSet

ID = r"(?P<alert_id>[^/]+)"

urlpatterns = [
    re_path(r"^/?$", AlertViewSet.as_view({"get": "list"}), name="alert-list"),
    re_path(
        rf"^/{ID}/?$",
        AlertViewSet.as_view({"get": "retrieve"}),
        name="alert-detail",
    ),
    re_path(
        rf"^/{ID}/incident/?$",
        AlertViewSet.as_view({"put": "reassign"}),
        name="alert-reassign",
    ),
    re_path(
        rf"^/{ID}/analyze/?$",
        AlertViewSet.as_view({"post": "analyze"}),
        name="alert-analyze",
    ),
]
