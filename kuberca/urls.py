"""Root URL configuration: the only module that knows every app's routes."""

from django.contrib import admin
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularJSONAPIView

from kuberca import errors, views

handler400 = "kuberca.errors.json_400"
handler403 = "kuberca.errors.json_403"
handler404 = "kuberca.errors.json_404"
handler500 = "kuberca.errors.json_500"

urlpatterns = [
    path("", views.root, name="root"),
    path("ping", views.ping, name="ping"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
    path("api/docs/", views.DocsView.as_view(url_name="openapi"), name="docs"),
    path("admin/", admin.site.urls),
    path("webhook/", include("alerts.webhook_urls")),
    path("api/v1/auth/", include("accounts.urls")),
    path("api/v1/incidents", include("incidents.urls")),
    path("api/v1/alerts", include("alerts.urls")),
    path("api/v1/embeddings", include("embeddings.urls")),
    # Last: whatever matched nothing above is a JSON 404, in DEBUG too, for
    # any method (the CSRF check would answer a POST with HTML first). The
    # admin keeps its own 404s; a static file WhiteNoise did not find is an
    # unknown path like any other (in DEBUG, Django's HTML page lists every
    # route). `[\s\S]`, not `.`: a path may hold a line break (%0A).
    re_path(r"^(?!admin/)[\s\S]*$", csrf_exempt(errors.json_404)),
]
