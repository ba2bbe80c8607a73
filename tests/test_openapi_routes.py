"""The OpenAPI document names every API route, method and documented answer.

Routes are read from the URL conf, so a route added later without a schema
fails here. The incident and alert operations are also checked against the
bodies and status codes of SPEC §7.
"""

import re
from collections.abc import Iterator

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from openapi_spec_validator import validate

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")
_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


def _text(entry: URLPattern | URLResolver) -> str:
    pattern = entry.pattern
    regex = getattr(pattern, "_regex", None)
    if regex is None:  # a path() route
        return _CONVERTER.sub(lambda m: "{" + m.group(1) + "}", str(pattern))
    text = regex.lstrip("^").removesuffix("$").removesuffix(r"\Z")
    text = text.removesuffix("/?")
    return _GROUP.sub(lambda m: "{" + m.group(1) + "}", text).replace("\\", "")


def _routes(resolver: URLResolver, prefix: str = "/") -> Iterator[tuple[str, object]]:
    for entry in resolver.url_patterns:
        path = prefix + _text(entry)
        if isinstance(entry, URLResolver):
            yield from _routes(entry, path)
        else:
            yield path.rstrip("/") or "/", entry.callback


def _api_operations() -> set[tuple[str, str]]:
    operations = set()
    for path, callback in _routes(get_resolver()):
        if not path.startswith("/api/v1/"):
            continue
        actions = getattr(callback, "actions", None)
        view_class = getattr(callback, "cls", None)
        if actions:
            methods = [m for m in METHODS if m in actions]
        elif view_class is not None:
            methods = [m for m in METHODS if hasattr(view_class, m)]
        else:
            continue  # not a DRF view: drf-spectacular cannot document it
        operations.update((path, method) for method in methods)
    return operations


@pytest.fixture(scope="module")
def document(django_db_blocker):  # noqa: ANN001, ANN201
    from rest_framework.test import APIClient

    with django_db_blocker.unblock():
        response = APIClient().get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def test_document_is_valid_openapi(document):
    validate(document)


def test_every_api_route_appears_in_the_document(document):
    operations = _api_operations()
    assert ("/api/v1/incidents", "get") in operations

    missing = sorted(
        f"{method.upper()} {path}"
        for path, method in operations
        if method not in document["paths"].get(path, {})
    )

    assert missing == []


def test_every_operation_has_a_summary_and_a_tag(document):
    # The docs page lists operations by tag and shows each one's summary.
    bare = sorted(
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if not operation.get("summary") or operation.get("tags") in (None, ["api"])
    )

    assert bare == []


def test_descriptions_are_the_documented_ones_not_code_docstrings(document):
    from kuberca.errors import DetailRouteEnvelope

    described = {
        f"{method.upper()} {path}": operation.get("description", "")
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    inner = DetailRouteEnvelope.__doc__.split("\n")[0]

    assert [name for name, text in described.items() if inner in text] == []
    assert described["PATCH /api/v1/incidents/{incident_id}"].startswith(
        "It leaves the lists"
    )
    assert "stored before it is processed" in described["POST /webhook/alertmanager"]


LIST = {"200", "400", "401"}
DETAIL = {"200", "401", "404"}
# 403: no Agent is configured.
ANALYZE = {"202", "401", "403", "404"}
EXPECTED = {
    ("/api/v1/incidents", "get"): LIST,
    ("/api/v1/incidents/hidden", "get"): LIST,
    ("/api/v1/incidents/mock", "post"): {"200", "401", "403"},
    ("/api/v1/incidents/{incident_id}", "get"): DETAIL,
    ("/api/v1/incidents/{incident_id}", "put"): DETAIL | {"400"},
    ("/api/v1/incidents/{incident_id}", "patch"): DETAIL,
    ("/api/v1/incidents/{incident_id}/unhide", "patch"): DETAIL,
    ("/api/v1/incidents/{incident_id}/resolve", "post"): DETAIL | {"400", "409"},
    ("/api/v1/incidents/{incident_id}/alerts", "get"): DETAIL | {"400"},
    ("/api/v1/incidents/{incident_id}/analyze", "post"): ANALYZE,
    ("/api/v1/alerts", "get"): LIST,
    ("/api/v1/alerts/{alert_id}", "get"): DETAIL,
    ("/api/v1/alerts/{alert_id}/incident", "put"): DETAIL | {"400"},
    ("/api/v1/alerts/{alert_id}/analyze", "post"): ANALYZE | {"503"},
}


@pytest.mark.parametrize(("path", "method"), sorted(EXPECTED))
def test_incident_and_alert_operations_document_every_answer(document, path, method):
    operation = document["paths"][path][method]

    assert set(operation["responses"]) == EXPECTED[(path, method)]
    assert operation["security"] == [{"jwtAuth": []}]
    assert all("content" in answer for answer in operation["responses"].values())


def _properties(document: dict, name: str) -> set[str]:
    return set(document["components"]["schemas"][name]["properties"])


def test_documented_bodies_have_the_keys_of_spec(document):
    schemas = document["components"]["schemas"]

    assert _properties(document, "IncidentListItem") == {
        "incident_id", "title", "severity", "status", "fired_at", "resolved_at",
        "alert_count",
    }  # fmt: skip
    assert _properties(document, "AlertItem") == {
        "alert_id", "incident_id", "alarm_title", "namespace", "severity",
        "status", "fired_at", "resolved_at", "labels",
    }  # fmt: skip
    assert _properties(document, "IncidentDetailEnvelope") == {"status", "data"}
    assert "alerts" not in schemas["IncidentDetail"]["required"]
    assert "similar_incidents" in schemas["IncidentDetail"]["required"]
    assert _properties(document, "EnvelopeError") == {"status", "message", "error"}
    assert _properties(document, "IncidentMessage") == {
        "status",
        "message",
        "incident_id",
    }
    assert _properties(document, "AlertMessage") == {"status", "message", "alert_id"}
    assert _properties(document, "IncidentUpdateRequest") == {
        "title",
        "severity",
        "analysis_summary",
        "analysis_detail",
    }
    assert schemas["IncidentUpdateRequest"].get("required", []) == []
    assert schemas["AlertReassignRequest"]["required"] == ["incident_id"]


def test_list_operations_document_paging_headers_and_filters(document):
    for path in ("/api/v1/incidents", "/api/v1/alerts"):
        operation = document["paths"][path]["get"]
        names = {p["name"] for p in operation["parameters"]}
        headers = set(operation["responses"]["200"]["headers"])

        assert names >= {"limit", "offset", "status", "severity", "q", "since"}
        assert {"until", "namespace"} <= names
        assert headers == {"X-Total-Count", "Link"}


def test_webhook_is_documented_with_the_answers_it_gives(document):
    from alerts.services import IngestResult

    operation = document["paths"]["/webhook/alertmanager"]["post"]

    assert set(operation["responses"]) == {"200", "400", "401", "413", "503"}
    received = IngestResult(http_status=200, delivery_id=1).body()
    assert _properties(document, "WebhookReceived") == set(received)
    failed = IngestResult(http_status=503, delivery_id=1, error="e", detail="d")
    assert _properties(document, "WebhookError") == set(failed.body())
    payload = document["components"]["schemas"]["AlertmanagerPayload"]
    assert "alerts" in payload["required"]


@pytest.mark.parametrize(
    ("operation", "field"),
    [
        ("/api/v1/incidents/{incident_id}/analyze", "incident_id"),
        ("/api/v1/alerts/{alert_id}/analyze", "alert_id"),
    ],
)
def test_analyze_without_an_agent_answers_a_documented_403(
    document, auth_client, settings, operation, field
):
    from alerts.tests.factories import AlertFactory

    settings.AGENT_ENABLED = False
    alert = AlertFactory()
    ids = {"incident_id": alert.incident_id, "alert_id": alert.pk}

    response = auth_client.post(operation.format(**{field: ids[field]}))

    assert response.status_code == 403
    assert response.json()["error"] == "agent disabled"
    assert "403" in document["paths"][operation]["post"]["responses"]


def test_alert_detail_annotations_match_the_document_when_not_strings(
    document, auth_client, client
):
    from openapi_schema_validator import OAS30Validator

    from alerts.models import Alert
    from alerts.tests.webhook_helpers import make_alert, make_payload

    alert = make_alert("DiskFull", summary="Disk full")
    alert["annotations"] |= {"value": 97.5, "runbook": {"steps": [1, 2]}, "x": None}
    delivered = client.post(
        "/webhook/alertmanager", make_payload(alert), content_type="application/json"
    )
    assert delivered.status_code == 200

    response = auth_client.get(f"/api/v1/alerts/{Alert.objects.get().pk}")

    assert response.status_code == 200
    annotations = response.json()["annotations"]
    assert annotations["runbook"] == {"steps": [1, 2]}
    documented = document["components"]["schemas"]["AlertDetail"]["properties"]
    OAS30Validator(documented["annotations"]).validate(annotations)


def _query_schemas(document: dict, path: str) -> dict[str, dict]:
    parameters = document["paths"][path]["get"]["parameters"]
    return {p["name"]: p["schema"] for p in parameters if p["in"] == "query"}


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/incidents",
        "/api/v1/incidents/hidden",
        "/api/v1/incidents/{incident_id}/alerts",
        "/api/v1/alerts",
    ],
)
def test_list_parameters_document_the_bounds_that_answer_400(
    document, auth_client, path
):
    from kuberca.pagination import MAX_OFFSET

    schemas = _query_schemas(document, path)

    assert schemas["limit"]["minimum"] == schemas["offset"]["minimum"] == 0
    assert schemas["offset"]["maximum"] == MAX_OFFSET
    url = path.format(incident_id="INC-00000000")
    for query in ("limit=-1", "offset=-1", f"offset={MAX_OFFSET + 1}"):
        assert auth_client.get(f"{url}?{query}").status_code == 400


def test_resolve_documents_the_null_resolved_by_it_takes(document, auth_client):
    from incidents.tests.factories import IncidentFactory

    incident = IncidentFactory()
    schemas = document["components"]["schemas"]

    response = auth_client.post(
        f"/api/v1/incidents/{incident.pk}/resolve",
        {"resolved_by": None},
        format="json",
    )

    assert response.status_code == 200
    assert schemas["IncidentResolveRequest"]["properties"]["resolved_by"]["nullable"]
