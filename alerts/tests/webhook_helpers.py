"""Helpers for the ingestion tests: payload builders and a webhook poster."""

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "alertmanager"
OUTAGE = FIXTURES / "outage-sequence"
ZERO_TIME = "0001-01-01T00:00:00Z"
T0 = datetime(2026, 12, 3, 16, 0, tzinfo=UTC)


def rfc3339(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def make_alert(
    name: str = "KubePodCrashLooping",
    *,
    status: str = "firing",
    namespace: str | None = "shop",
    severity: str | None = "warning",
    starts_at: datetime = T0,
    ends_at: datetime | None = None,
    fingerprint: str | None = None,
    summary: str | None = None,
    **labels: str,
) -> dict[str, Any]:
    all_labels = {"alertname": name, **labels}
    if namespace is not None:
        all_labels["namespace"] = namespace
    if severity is not None:
        all_labels["severity"] = severity
    alert: dict[str, Any] = {
        "status": status,
        "labels": all_labels,
        "annotations": {"summary": summary} if summary else {},
        "startsAt": rfc3339(starts_at),
        "endsAt": rfc3339(ends_at) if ends_at else ZERO_TIME,
        "generatorURL": "http://prometheus/graph",
    }
    if fingerprint is not None:
        alert["fingerprint"] = fingerprint
    return alert


def make_payload(*alerts: dict[str, Any], **envelope: Any) -> dict[str, Any]:
    statuses = {a["status"] for a in alerts}
    return {
        "version": "4",
        "groupKey": '{}:{alertname="X"}',
        "truncatedAlerts": 0,
        "status": "firing" if "firing" in statuses else "resolved",
        "receiver": "kuberca",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
        **envelope,
    }


Poster = Callable[..., Any]


@pytest.fixture
def post_webhook(client: Client) -> Poster:
    """POST a payload (dict, list or raw bytes) to the webhook."""

    def post(body: Any, **headers: str) -> Any:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return client.post(
            "/webhook/alertmanager",
            data=data,
            content_type="application/json",
            headers=headers,
        )

    return post


class Clock:
    """A settable `timezone.now` for tests of windows and ages."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now = self.now + timedelta(**delta)
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    current = Clock(T0 + timedelta(minutes=1))
    monkeypatch.setattr("django.utils.timezone.now", current)
    return current


def ingest(payload: Any) -> Any:
    """Feed a payload through the webhook's service path."""
    from alerts.services import delivery_ingest

    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return delivery_ingest(body=body, headers={}, source_address="127.0.0.1")
