"""Routes under /api/v1/auth/, each with or without a trailing slash."""

from django.urls import URLPattern, path
from drf_spectacular.openapi import AutoSchema
from rest_framework.views import APIView

from accounts import views


class _AliasSchema(AutoSchema):
    """The trailing-slash twin of a route stays out of the OpenAPI document."""

    def is_excluded(self) -> bool:
        return True


def _routes(route: str, view: type[APIView], name: str) -> list[URLPattern]:
    alias = type(f"{view.__name__}Alias", (view,), {"schema": _AliasSchema()})
    return [
        path(route, view.as_view(), name=name),
        path(f"{route}/", alias.as_view()),
    ]


urlpatterns = [
    *_routes("register", views.RegisterView, "auth-register"),
    *_routes("login", views.LoginView, "auth-login"),
    *_routes("refresh", views.RefreshView, "auth-refresh"),
    *_routes("logout", views.LogoutView, "auth-logout"),
    *_routes("config", views.ConfigView, "auth-config"),
    *_routes("me", views.MeView, "auth-me"),
]
