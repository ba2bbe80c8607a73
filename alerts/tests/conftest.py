"""Fixtures of the ingestion tests (helpers live in webhook_helpers)."""

from alerts.tests.webhook_helpers import clock, post_webhook

__all__ = ["clock", "post_webhook"]
