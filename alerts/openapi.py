"""The webhook in the OpenAPI document (a drf-spectacular postprocessing hook).

`POST /webhook/alertmanager` is a plain Django view, not a DRF one, so
drf-spectacular does not see it; this hook adds it, with the Alertmanager
payload it reads and the answers of SPEC §3.1 and §3.2.
"""

from typing import Any

PATH = "/webhook/alertmanager"

_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}

_SCHEMAS: dict[str, dict[str, Any]] = {
    "AlertmanagerAlert": {
        "type": "object",
        "required": ["labels"],
        "properties": {
            "status": {"type": "string", "enum": ["firing", "resolved"]},
            "labels": _STRINGS,
            "annotations": _STRINGS,
            "startsAt": {"type": "string", "format": "date-time"},
            "endsAt": {
                "type": "string",
                "format": "date-time",
                "description": "0001-01-01T00:00:00Z means not ended.",
            },
            "generatorURL": {"type": "string"},
            "fingerprint": {
                "type": "string",
                "description": "Opaque; computed from the labels when missing.",
            },
        },
    },
    # Only `alerts` being a list decides whether a body is a payload: every
    # other field may be missing or of another type (Grafana, old
    # Alertmanagers), and an alert that does not fit is listed under
    # `rejected` while the others are kept. So the other fields only say what
    # they hold, and an alert may be anything.
    "AlertmanagerPayload": {
        "type": "object",
        "required": ["alerts"],
        "description": "Alertmanager's webhook payload, version 4. Fields of "
        "other senders (Grafana's among them) are accepted and ignored.",
        "properties": {
            "version": {"description": 'Not checked (Grafana sends "1").'},
            "groupKey": {"description": "Opaque; a number is taken as text."},
            "truncatedAlerts": {"description": "Alerts Alertmanager left out."},
            "status": {"description": "firing or resolved (each alert's decides)."},
            "receiver": {"description": "The receiver's name."},
            "groupLabels": {"description": "Label name to value."},
            "commonLabels": {"description": "Label name to value."},
            "commonAnnotations": {"description": "Annotation name to value."},
            "externalURL": {"description": "Alertmanager's URL."},
            "alerts": {
                "type": "array",
                "items": {
                    "anyOf": [{"$ref": "#/components/schemas/AlertmanagerAlert"}, {}],
                    "description": "An alert; one that is not an "
                    "AlertmanagerAlert is listed under `rejected`.",
                },
            },
        },
    },
    "WebhookRejection": {
        "type": "object",
        "required": ["index", "reason"],
        "properties": {
            "index": {"type": "integer", "description": "Position in `alerts`."},
            "reason": {"type": "string"},
        },
    },
    "WebhookReceived": {
        "type": "object",
        "required": [
            "status",
            "alertCount",
            "slackSent",
            "slackFailed",
            "stored",
            "ignored",
            "duplicates",
            "rejected",
            "deliveryId",
        ],
        "properties": {
            "status": {"type": "string", "enum": ["received"]},
            "alertCount": {"type": "integer", "description": "Alerts in the body."},
            "slackSent": {
                "type": "integer",
                "description": "Slack messages queued for the worker.",
            },
            "slackFailed": {"type": "integer", "description": "Always 0."},
            "stored": {"type": "integer", "description": "New or changed alerts."},
            "ignored": {
                "type": "integer",
                "description": "Alerts below the INGEST_SEVERITIES gate.",
            },
            "duplicates": {"type": "integer", "description": "Known, unchanged."},
            "rejected": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/WebhookRejection"},
            },
            "deliveryId": {"type": "integer"},
        },
    },
    "WebhookError": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string"},
            "detail": {"type": "string"},
            "deliveryId": {
                "type": "integer",
                "description": "Set when the delivery was stored.",
            },
        },
    },
}


def _answer(description: str, schema: str, **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}
        },
        **extra,
    }


_OPERATION: dict[str, Any] = {
    "operationId": "webhook_alertmanager",
    "tags": ["webhook"],
    "summary": "Receive an Alertmanager webhook delivery",
    "description": "Every delivery is stored before it is processed. "
    "Alertmanager retries only 5xx answers, so a bad alert is listed under "
    "`rejected` (200) and only a body that is not a payload is a 400. Public "
    "unless WEBHOOK_AUTH_TOKEN is set (Bearer, or basic with the token as "
    "password); WEBHOOK_HMAC_SECRET also requires `X-Webhook-Signature: "
    "sha256=<hex>`.",
    "security": [{"webhookBearer": []}, {"webhookBasic": []}, {}],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/AlertmanagerPayload"}
            }
        },
    },
    "responses": {
        "200": _answer(
            "Processed; bad alerts listed under `rejected`.", "WebhookReceived"
        ),
        "400": _answer(
            "The body is not a payload (retrying cannot help).", "WebhookError"
        ),
        "401": _answer("Wrong or missing token or signature.", "WebhookError"),
        "413": _answer(
            "Body over WEBHOOK_MAX_BYTES (the delivery is recorded).", "WebhookError"
        ),
        "503": _answer(
            "Database unavailable or rate limit exceeded; Alertmanager retries.",
            "WebhookError",
            headers={
                "Retry-After": {
                    "description": "Seconds to wait (the window when throttled,"
                    " 5 when the database failed).",
                    "schema": {"type": "integer"},
                }
            },
        ),
    },
}


def document_webhook(result: dict, **kwargs: Any) -> dict:
    """Postprocessing hook: add `POST /webhook/alertmanager`."""
    result.setdefault("paths", {})[PATH] = {"post": _OPERATION}
    components = result.setdefault("components", {})
    components.setdefault("schemas", {}).update(_SCHEMAS)
    components.setdefault("securitySchemes", {}).update(
        {
            "webhookBearer": {"type": "http", "scheme": "bearer"},
            "webhookBasic": {"type": "http", "scheme": "basic"},
        }
    )
    return result
