"""Webhook routes, mounted under `webhook/` by kuberca/urls.py."""

from django.urls import path

from alerts.webhook import alertmanager_webhook

urlpatterns = [
    path("alertmanager", alertmanager_webhook, name="webhook-alertmanager"),
]
