"""Hostile input to the REST API: every bad request is a 4xx JSON that says why.

Wrong types, unknown ids, huge or malformed query parameters, NUL characters
and unicode against the auth, incident, alert and embeddings routes. None may
answer 5xx, and none may write half of what it was asked (SPEC §7 Errors).
"""

import json

import pytest
from rest_framework.test import APIClient

from alerts.tests.factories import AlertFactory
from incidents.models import Incident
from incidents.tests.factories import IncidentFactory

pytestmark = pytest.mark.django_db

LISTS = ["/api/v1/incidents", "/api/v1/incidents/hidden", "/api/v1/alerts"]


def assert_json_4xx(response, *, status: int = 400) -> dict:  # noqa: ANN001
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"]
    return body


@pytest.fixture
def incident():  # noqa: ANN201
    incident = IncidentFactory(title="Original", severity="warning")
    AlertFactory(incident=incident)
    return incident


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("limit=abc", "limit"),
        ("limit=-1", "limit"),
        ("limit=1.5", "limit"),
        ("offset=-5", "offset"),
        ("offset=10000000000000000000000", "offset"),
        ("since=garbage", "since"),
        ("since=2026-13-01T00:00:00Z", "since"),
        ("since=0001-01-01T00:00:00%2B01:00", "since"),
        ("until=%00", "until"),
        ("q=%00", "q"),
        ("q=" + "x" * 201, "q"),
        ("namespace=%00", "namespace"),
        ("status=bogus", "status"),
        ("severity=critical,bogus", "severity"),
    ],
)
def test_bad_list_parameter_is_400_naming_it(auth_client, incident, path, query, named):  # noqa: ANN001
    body = assert_json_4xx(auth_client.get(f"{path}?{query}"))
    assert body["error"] == "invalid parameter"
    assert body["detail"].startswith(named + ":")


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize(
    "query",
    [
        "since=0001-01-01T00:00:00%2B14:00",
        "until=9999-12-31T23:59:59-14:00",
        "since=0000-12-31T23:00:00Z",
        "until=0000-02-29T12:00:00-14:00",
        "since=0000-01-01T00:00:00%2B14:00",
    ],
)
def test_a_time_past_the_calendar_in_utc_is_400_saying_so(
    auth_client,  # noqa: ANN001
    path: str,
    query: str,
) -> None:
    # Both are well-formed RFC 3339; only their UTC instant is out of range.
    body = assert_json_4xx(auth_client.get(f"{path}?{query}"))

    assert body["detail"] == (
        f"{query.split('=')[0]}: out of range; in UTC it must fall within the"
        " years 1 to 9999"
    )


@pytest.mark.parametrize("path", LISTS)
def test_a_time_of_year_0000_that_is_year_1_in_utc_is_taken(
    auth_client,  # noqa: ANN001
    path: str,
) -> None:
    # RFC 3339's years start at 0000; this one is 0001-01-01T13:00:00Z.
    response = auth_client.get(f"{path}?since=0000-12-31T23:00:00-14:00")

    assert response.status_code == 200


@pytest.mark.parametrize("path", LISTS)
def test_huge_limit_is_clamped_and_huge_offset_is_an_empty_page(
    auth_client,  # noqa: ANN001
    incident,  # noqa: ANN001
    path: str,
) -> None:
    clamped = auth_client.get(f"{path}?limit=10000000000000000000000")
    assert clamped.status_code == 200
    beyond = auth_client.get(f"{path}?offset=1000000000000")
    assert beyond.status_code == 200 and beyond.json() == []


@pytest.mark.parametrize(
    "query", ["q=%E2%98%83%F0%9F%94%A5", "q=%EC%9E%A5%EC%95%A0", "q=%ff", "q=%27%3B--"]
)
def test_unicode_and_odd_bytes_in_text_filters_are_searched(auth_client, query):  # noqa: ANN001
    for path in LISTS:
        assert auth_client.get(f"{path}?{query}").status_code == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"title": 5}, "title must be a string"),
        ({"severity": "bogus"}, "severity must be one of"),
        ({"severity": None}, "severity must be a string"),
        ({"title": "x" * 2001}, "at most 2000"),
        ({"analysis_summary": ["a"]}, "analysis_summary must be a string"),
        ([1, 2], "JSON object"),
        ("text", "JSON object"),
    ],
)
def test_put_with_wrong_types_is_400_and_writes_nothing(
    auth_client, incident, body, message
):  # noqa: ANN001, E501
    payload = {"title": "Changed", **body} if isinstance(body, dict) else body
    response = auth_client.put(
        f"/api/v1/incidents/{incident.pk}", payload, format="json"
    )
    answer = assert_json_4xx(response)
    assert answer["status"] == "error" and message in answer["message"]
    assert Incident.objects.get(pk=incident.pk).title == "Original"


@pytest.mark.parametrize("field", ["title", "analysis_summary", "analysis_detail"])
def test_put_with_a_nul_character_is_400_not_503(auth_client, incident, field):  # noqa: ANN001
    response = auth_client.put(
        f"/api/v1/incidents/{incident.pk}",
        {"title": "Changed", field: "a\x00b"},
        format="json",
    )
    answer = assert_json_4xx(response)
    assert answer["error"] == "invalid input" and "NUL" in answer["message"]
    assert Incident.objects.get(pk=incident.pk).title == "Original"


def _distinct_words(chars: int, salt: str) -> str:
    """`chars` characters of short words all different: the biggest tsvector."""
    letters = "bcdfghjklmnpqrstvwxz"
    words, size, n = [], 0, 0
    while size < chars:
        word, k = salt, n
        for _ in range(4):
            word, k = word + letters[k % 20], k // 20
        words.append(word)
        size += len(word) + 1
        n += 1
    return " ".join(words)[:chars]


def test_put_of_analyses_at_their_limit_is_stored(auth_client, incident):  # noqa: ANN001
    limit = Incident._meta.get_field("analysis_detail").max_length
    body = {
        "title": _distinct_words(2000, "t"),
        "analysis_summary": _distinct_words(limit, "s"),
        "analysis_detail": _distinct_words(limit, "d"),
    }
    response = auth_client.put(f"/api/v1/incidents/{incident.pk}", body, format="json")
    assert response.status_code == 200, response.content[:300]
    assert len(Incident.objects.get(pk=incident.pk).analysis_detail) == limit


@pytest.mark.parametrize("field", ["analysis_summary", "analysis_detail"])
def test_put_of_an_analysis_over_its_limit_is_400_not_503(auth_client, incident, field):  # noqa: ANN001
    # 1.3 MB of different words: more than a tsvector (1 MB) can hold.
    response = auth_client.put(
        f"/api/v1/incidents/{incident.pk}",
        {"title": "Changed", field: _distinct_words(1_300_000, "x")},
        format="json",
    )
    answer = assert_json_4xx(response)
    assert answer["error"] == "invalid input"
    assert answer["message"] == f"{field} must be at most 100000 characters"
    assert Incident.objects.get(pk=incident.pk).title == "Original"


@pytest.mark.parametrize("title", ["", "   ", "\t\n", "\u200b", "\u00a0\u2060"])
def test_put_of_a_blank_title_is_400(auth_client, incident, title):  # noqa: ANN001
    response = auth_client.put(
        f"/api/v1/incidents/{incident.pk}", {"title": title}, format="json"
    )
    assert assert_json_4xx(response)["message"] == "title must not be blank"
    assert Incident.objects.get(pk=incident.pk).title == "Original"


def test_put_with_unicode_is_stored_as_sent(auth_client, incident):  # noqa: ANN001
    title = "장애 🔥 \u202e right-to-left"
    response = auth_client.put(
        f"/api/v1/incidents/{incident.pk}", {"title": title}, format="json"
    )
    assert response.status_code == 200
    assert Incident.objects.get(pk=incident.pk).title == title


def test_malformed_json_and_wrong_media_type_are_4xx(auth_client, incident):  # noqa: ANN001
    url = f"/api/v1/incidents/{incident.pk}"
    bad = auth_client.put(url, data="{", content_type="application/json")
    assert assert_json_4xx(bad)["error"] == "invalid request"
    form = auth_client.put(
        url, data="title=x", content_type="application/x-www-form-urlencoded"
    )
    assert_json_4xx(form, status=415)


@pytest.mark.parametrize(
    "incident_id",
    ["INC-deadbeef00", "INC-%00", "INC-%C3%A9", "x" * 3000, "%F0%9F%94%A5"],
)
@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("get", ""),
        ("put", ""),
        ("patch", ""),
        ("patch", "/unhide"),
        ("post", "/resolve"),
        ("get", "/alerts"),
        ("post", "/analyze"),
    ],
)
def test_unknown_or_impossible_incident_id_is_a_404(
    auth_client, incident_id, method, suffix
):  # noqa: ANN001, E501
    response = getattr(auth_client, method)(
        f"/api/v1/incidents/{incident_id}{suffix}", {}, format="json"
    )
    assert response.status_code == 404, response.content[:300]
    assert response.json()["status"] == "error"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"resolved_by": 5}, 400),
        ({"resolved_by": ["x"]}, 400),
        ({"resolved_by": "a\x00b"}, 400),
        ([1], 400),
    ],
)
def test_resolve_with_a_bad_body_is_400_and_leaves_it_firing(
    auth_client, incident, body, status
):  # noqa: ANN001, E501
    response = auth_client.post(
        f"/api/v1/incidents/{incident.pk}/resolve", body, format="json"
    )
    assert_json_4xx(response, status=status)
    assert Incident.objects.get(pk=incident.pk).status == "firing"


def test_resolve_refuses_a_huge_resolved_by(auth_client, incident):  # noqa: ANN001
    response = auth_client.post(
        f"/api/v1/incidents/{incident.pk}/resolve",
        {"resolved_by": "é" * 10_000},
        format="json",
    )
    assert response.status_code == 400
    assert Incident.objects.get(pk=incident.pk).status == "firing"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"incident_id": 5}, 400),
        ({"incident_id": {"a": 1}}, 400),
        ({}, 400),
        ({"incident_id": "   "}, 400),
        ({"incident_id": "INC-\x00"}, 400),
        ({"incident_id": "INC-deadbeef00"}, 404),
        ({"incident_id": "x" * 100_000}, 404),
    ],
)
def test_reassign_with_a_bad_incident_id_is_a_4xx_and_moves_nothing(
    auth_client,  # noqa: ANN001
    body,  # noqa: ANN001
    status: int,
) -> None:
    alert = AlertFactory()
    response = auth_client.put(
        f"/api/v1/alerts/{alert.pk}/incident", body, format="json"
    )
    assert_json_4xx(response, status=status)
    alert.refresh_from_db()
    assert alert.grouping_reason != "moved"


@pytest.mark.parametrize("alert_id", ["ALR-00000000", "ALR-%00", "%F0%9F%94%A5"])
def test_unknown_alert_id_is_a_404(auth_client, incident, alert_id):  # noqa: ANN001
    for response in (
        auth_client.get(f"/api/v1/alerts/{alert_id}"),
        auth_client.put(
            f"/api/v1/alerts/{alert_id}/incident",
            {"incident_id": incident.pk},
            format="json",
        ),
    ):
        assert response.status_code == 404, response.content[:300]
        assert response.json()["status"] == "error"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"query": "x", "limit": "5"}, "invalid input"),
        ({"query": "x", "limit": -1}, "invalid input"),
        ({"query": "x", "limit": 0}, "invalid input"),
        ({"query": "x", "limit": 1e9}, "invalid input"),
        ({"query": "x", "limit": True}, "invalid input"),
        ({"query": "x" * 100_001}, "invalid input"),
        ({"query": 5}, "query is required"),
        ({"query": "   "}, "query is required"),
        ([1], "query is required"),
        ({"query": "a\x00b"}, "invalid input"),
    ],
)
def test_search_with_a_bad_body_is_400(auth_client, body, error):  # noqa: ANN001
    response = auth_client.post("/api/v1/embeddings/search", body, format="json")
    assert assert_json_4xx(response)["error"] == error


@pytest.mark.parametrize(
    "body",
    [
        {"query": "x", "limit": 10**9},
        {"query": "x", "limit": None},
        {"query": "장애 🔥 disk"},
        {"query": "!!! & | ( ) :* ' \\"},
        {"query": "word " * 19_000},
    ],
)
def test_search_with_odd_but_valid_input_answers(auth_client, incident, body):  # noqa: ANN001
    response = auth_client.post("/api/v1/embeddings/search", body, format="json")
    assert response.status_code == 200, response.content[:300]
    assert len(response.json()["results"]) <= 100


@pytest.mark.parametrize(
    "body",
    [
        {"incident_id": "INC-x", "incident_summary": 5},
        {"incident_id": 5, "incident_summary": "x"},
        {"incident_id": "INC-x"},
        [1],
    ],
)
def test_storing_an_embedding_with_wrong_types_is_400(auth_client, body):  # noqa: ANN001
    response = auth_client.post("/api/v1/embeddings", body, format="json")
    answer = assert_json_4xx(response)
    assert answer["error"] == "incident_id and incident_summary are required"


def test_storing_an_embedding_for_an_unknown_id_longer_than_any_is_404(
    auth_client,  # noqa: ANN001
) -> None:
    response = auth_client.post(
        "/api/v1/embeddings",
        {"incident_id": "INC-" + "0" * 40, "incident_summary": "x"},
        format="json",
    )

    assert response.status_code == 404, response.content
    assert response.json() == {"error": "incident not found"}


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"incident_id": "INC-" + "0" * 400, "incident_summary": "x"}, "incident_id"),
        (
            {"incident_id": "INC-00000000", "incident_summary": "a\x00b"},
            "incident_summary",
        ),
    ],
)
def test_storing_an_embedding_with_a_bad_string_says_which_and_why(
    auth_client,  # noqa: ANN001
    body: dict,
    named: str,
) -> None:
    # Both keys are there, so "incident_id and incident_summary are required"
    # would not say what was wrong.
    response = auth_client.post("/api/v1/embeddings", body, format="json")
    answer = assert_json_4xx(response)
    assert answer["error"] == "invalid input"
    assert answer["detail"].startswith(named + ":")


@pytest.mark.parametrize(
    ("data", "content_type", "error"),
    [
        ("{", "application/json", "invalid request"),
        ("[1]", "application/json", "invalid request"),
        ('"x"', "application/json", "invalid request"),
        (
            "id=abc&password=12345678",
            "application/x-www-form-urlencoded",
            "invalid request",
        ),
        ('{"id":"abc","password":"12345678"}', "", "invalid request"),
        (
            json.dumps({"id": 123, "password": "12345678"}),
            "application/json",
            "invalid input",
        ),
        (
            json.dumps({"id": "abc", "password": ["x" * 8]}),
            "application/json",
            "invalid input",
        ),
        (
            json.dumps({"id": "ab\u0000c", "password": "12345678"}),
            "application/json",
            "invalid input",
        ),
        (
            json.dumps({"id": "abc", "password": "x" * 5_000_000}),
            "application/json",
            "invalid input",
        ),
        (
            json.dumps({"id": "a" * 65, "password": "12345678"}),
            "application/json",
            "invalid input",
        ),
    ],
)
def test_login_with_a_bad_body_is_400(api_client, data, content_type, error):  # noqa: ANN001
    response = api_client.generic(
        "POST", "/api/v1/auth/login", data=data, content_type=content_type
    )
    assert assert_json_4xx(response)["error"] == error


def test_login_with_a_unicode_id_is_just_unauthorized(api_client):  # noqa: ANN001
    response = api_client.post(
        "/api/v1/auth/login", {"id": "장애🔥", "password": "12345678"}, format="json"
    )
    assert_json_4xx(response, status=401)


@pytest.mark.parametrize("cookie", ["garbage", "x" * 10_000, "a.b.c", "é"])
def test_refresh_and_logout_with_a_garbage_cookie_are_safe(cookie: str) -> None:
    client = APIClient()
    client.cookies["kube_rca_refresh"] = cookie
    assert_json_4xx(client.post("/api/v1/auth/refresh"), status=401)
    assert client.post("/api/v1/auth/logout").status_code == 200


def test_register_when_disabled_is_403_whatever_the_body(api_client):  # noqa: ANN001
    response = api_client.generic(
        "POST", "/api/v1/auth/register", data="{", content_type="application/json"
    )
    assert assert_json_4xx(response, status=403)["error"] == "signup disabled"


BIG = 11 * 1024 * 1024  # over DATA_UPLOAD_MAX_MEMORY_SIZE (WEBHOOK_MAX_BYTES + 1)


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("put", "/api/v1/incidents/{id}", "analysis_summary"),
        ("post", "/api/v1/auth/login", "password"),
        ("post", "/api/v1/embeddings/search", "query"),
    ],
)
def test_body_over_the_upload_limit_is_413_not_500(
    auth_client,  # noqa: ANN001
    incident,  # noqa: ANN001
    method: str,
    path: str,
    field: str,
) -> None:
    body = json.dumps({"id": "abc", field: "y" * BIG})
    response = getattr(auth_client, method)(
        path.format(id=incident.pk), data=body, content_type="application/json"
    )
    assert assert_json_4xx(response, status=413)["error"] == "payload too large"
    assert Incident.objects.get(pk=incident.pk).analysis_summary == ""


@pytest.mark.parametrize(
    ("method", "path", "envelope"),
    [
        ("put", "/api/v1/incidents/{id}", True),
        ("put", "/api/v1/alerts/{alert}/incident", True),
        ("post", "/api/v1/auth/login", False),
        ("post", "/api/v1/embeddings/search", False),
    ],
)
def test_body_over_the_upload_limit_says_the_limit_in_the_route_s_shape(
    auth_client,  # noqa: ANN001
    incident,  # noqa: ANN001
    settings,  # noqa: ANN001
    method: str,
    path: str,
    envelope: bool,
) -> None:
    # SPEC §7: detail routes answer errors in {"status", "message", "error"};
    # the limit is told in bytes, not by the name of a Django setting.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    alert = incident.alerts.get()
    body = json.dumps({"incident_id": incident.pk, "password": "y" * 2000})
    response = getattr(auth_client, method)(
        path.format(id=incident.pk, alert=alert.pk),
        data=body,
        content_type="application/json",
    )
    assert_json_4xx(response, status=413)
    told = "the body is over the limit of 1000 bytes"
    if envelope:
        assert response.json() == {
            "status": "error",
            "message": told,
            "error": "payload too large",
        }
    else:
        assert response.json() == {"error": "payload too large", "detail": told}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("put", "/api/v1/incidents/{id}"),
        ("post", "/api/v1/auth/login"),
        ("post", "/api/v1/embeddings/search"),
        ("put", "/api/v1/alerts/ALR-00000000/incident"),
    ],
)
def test_json_nested_too_deeply_is_400_invalid_request(
    auth_client,  # noqa: ANN001
    incident,  # noqa: ANN001
    method: str,
    path: str,
) -> None:
    body = '{"id": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = getattr(auth_client, method)(
        path.format(id=incident.pk), data=body, content_type="application/json"
    )
    assert assert_json_4xx(response)["error"] == "invalid request"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("put", "/api/v1/incidents/{id}", {"title": "\ud800x"}),
        ("put", "/api/v1/incidents/{id}", {"analysis_detail": "a\udc00"}),
        ("post", "/api/v1/incidents/{id}/resolve", {"resolved_by": "\udfff"}),
        ("put", "/api/v1/alerts/{alert}/incident", {"incident_id": "INC-\ud800"}),
        ("post", "/api/v1/embeddings/search", {"query": "disk \udc00 full"}),
        ("put", "/api/v1/incidents/{id}", {"\ud800": "as a key"}),
    ],
)
def test_a_lone_surrogate_in_a_string_is_400_invalid_request(
    auth_client,  # noqa: ANN001
    incident,  # noqa: ANN001
    method: str,
    path: str,
    body: dict,
) -> None:
    alert = incident.alerts.get()
    # JSON may escape a lone surrogate; UTF-8 (and PostgreSQL) cannot hold one.
    raw = json.dumps(body)
    assert "\\ud" in raw or "\\udc" in raw
    response = getattr(auth_client, method)(
        path.format(id=incident.pk, alert=alert.pk),
        data=raw,
        content_type="application/json",
    )
    answer = assert_json_4xx(response)
    # The embeddings routes' envelope says "detail" (SPEC §7), the others "message".
    assert answer["error"] == "invalid request"
    assert "surrogate" in answer.get("message", answer.get("detail", ""))
    incident.refresh_from_db()
    assert (incident.title, incident.status) == ("Original", "firing")


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("post", "/api/v1/embeddings/search", "limit"),
        ("put", "/api/v1/incidents/{id}", "title"),
    ],
)
def test_a_number_of_thousands_of_digits_is_400_in_words_of_the_request(
    auth_client,  # noqa: ANN001
    incident,  # noqa: ANN001
    method: str,
    path: str,
    field: str,
) -> None:
    raw = f'{{"query": "disk full", "{field}": {"9" * 5000}}}'
    response = getattr(auth_client, method)(
        path.format(id=incident.pk), data=raw, content_type="application/json"
    )
    answer = assert_json_4xx(response)
    assert answer["error"] == "invalid request"
    detail = answer.get("message", answer.get("detail", ""))
    assert detail == "JSON parse error - a number has more than 4300 digits"
    incident.refresh_from_db()
    assert incident.title == "Original"


@pytest.mark.parametrize("accept", ["text/html", "application/xml", "image/*"])
def test_an_accept_header_of_another_format_still_gets_json(
    api_client,  # noqa: ANN001
    auth_client,  # noqa: ANN001
    incident,  # noqa: ANN001
    accept: str,
) -> None:
    # The API has one format; DRF used to answer 406 before it authenticated,
    # so a request without a token got 406, not SPEC §7's 401.
    for path in ("/api/v1/incidents", f"/api/v1/incidents/{incident.pk}"):
        refused = api_client.get(path, HTTP_ACCEPT=accept)
        assert assert_json_4xx(refused, status=401) == {"error": "unauthorized"}

        served = auth_client.get(path, HTTP_ACCEPT=accept)
        assert served.status_code == 200
        assert served["Content-Type"] == "application/json"
    assert served.json()["data"]["incident_id"] == incident.pk


def test_a_bad_host_header_is_a_json_400(api_client):  # noqa: ANN001
    response = api_client.get("/api/v1/auth/config", HTTP_HOST="bad host!")
    assert_json_4xx(response)


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize(
    "path", ["/api/v1/auth/config", "/api/v1/incidents", "/webhook/alertmanager", "/"]
)
def test_a_malformed_host_header_is_a_json_400_in_debug_too(
    api_client,  # noqa: ANN001
    settings,  # noqa: ANN001
    debug: bool,
    path: str,
) -> None:
    # `make run` runs with DEBUG on: Django's answer to a SuspiciousOperation
    # raised in a middleware is then its HTML debug page, with a traceback.
    settings.DEBUG = debug
    response = api_client.get(path, HTTP_HOST="[::1")
    answer = assert_json_4xx(response)
    assert answer["detail"] == (
        "the Host header is malformed or not a host this server answers"
    )


@pytest.mark.parametrize("debug", [False, True])
def test_a_form_with_too_many_fields_is_a_json_400_in_debug_too(
    settings,  # noqa: ANN001
    debug: bool,
) -> None:
    settings.DEBUG = debug
    fields = "&".join(
        f"f{n}=" for n in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)
    )
    response = APIClient().post(
        "/", fields, content_type="application/x-www-form-urlencoded"
    )
    answer = assert_json_4xx(response)
    assert answer["detail"] == "the form has too many fields"


@pytest.mark.parametrize("value", ["xml", "api", "json", ""])
@pytest.mark.parametrize(
    "path",
    [*LISTS, "/api/v1/incidents/{id}", "/api/v1/incidents/{id}/alerts"],
)
def test_a_format_query_parameter_is_ignored_not_a_404(
    auth_client,  # noqa: ANN001
    incident,  # noqa: ANN001
    path: str,
    value: str,
) -> None:
    # DRF read `format` as a renderer name: one it has not was a 404 "not
    # found", as if the incident did not exist.
    response = auth_client.get(path.format(id=incident.pk) + f"?format={value}")
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
