"""Webhook routes, mounted under `webhook/` by kuberca/urls.py."""

from django.urls import path

from alerts.webhook import alertmanager_webhook

urlpatterns = [
    path("alertmanager", alertmanager_webhook, name="webhook-alertmanager"),
    # Alertmanager drops a delivery answered 4xx: a receiver URL written with
    # a trailing slash must not lose every alert to a 404.
    path("alertmanager/", alertmanager_webhook),
]
