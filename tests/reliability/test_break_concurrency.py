"""Concurrent requests on one row give the state one request at a time gives.

Each test starts its requests from threads behind a barrier, through the real
middleware and views, against the test database with real commits; every
thread closes its own connection.
"""

import json
from collections import Counter
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.tests.factories import PASSWORD, UserFactory
from alerts.models import Alert
from alerts.tests.factories import AlertFactory
from alerts.tests.webhook_helpers import make_alert, make_payload
from incidents.models import Incident
from incidents.tests.factories import IncidentFactory
from kuberca.testing.concurrency import run_at_once

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def token(db) -> str:  # noqa: ANN001
    return str(RefreshToken.for_user(UserFactory(username="racer")).access_token)


def api(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def statuses(responses: list[Any]) -> Counter:
    return Counter(getattr(r, "status_code", repr(r)) for r in responses)


def test_ten_resolves_of_one_incident_give_one_200_and_nine_409(token: str) -> None:
    incident = IncidentFactory()
    url = f"/api/v1/incidents/{incident.pk}/resolve"

    responses = run_at_once(10, lambda i: api(token).post(url, {}, format="json"))

    assert statuses(responses) == Counter({200: 1, 409: 9})
    conflicts = [r.json() for r in responses if r.status_code == 409]
    assert all(c["error"] == "already resolved" for c in conflicts)
    incident.refresh_from_db()
    assert incident.status == "resolved" and incident.summary_generation == 1


def test_concurrent_hide_and_unhide_all_answer_and_end_in_one_state(token: str) -> None:
    incident = IncidentFactory()
    base = f"/api/v1/incidents/{incident.pk}"

    def toggle(index: int) -> Any:
        return api(token).patch(base if index % 2 else f"{base}/unhide")

    responses = run_at_once(10, toggle)

    assert statuses(responses) == Counter({200: 10})
    incident.refresh_from_db()
    assert incident.is_enabled in (True, False)
    listed = api(token).get("/api/v1/incidents").json()
    hidden = api(token).get("/api/v1/incidents/hidden").json()
    assert len(listed) + len(hidden) == 1


def test_concurrent_reassigns_of_one_alert_leave_it_in_one_target(token: str) -> None:
    alert = AlertFactory()
    source = alert.incident
    targets = [IncidentFactory() for _ in range(5)]

    def move(index: int) -> Any:
        target = targets[index % len(targets)]
        return api(token).put(
            f"/api/v1/alerts/{alert.pk}/incident",
            {"incident_id": target.pk},
            format="json",
        )

    responses = run_at_once(10, move)

    assert statuses(responses) == Counter({200: 10})
    alert.refresh_from_db()
    assert alert.incident_id in {t.pk for t in targets}
    assert alert.grouping_reason == "moved"
    counts = {
        row["incident_id"]: row["alert_count"]
        for row in api(token).get("/api/v1/incidents").json()
    }
    assert counts[alert.incident_id] == 1 and counts[source.pk] == 0
    assert sum(counts.values()) == 1


def test_concurrent_edits_of_one_incident_keep_one_whole_edit(token: str) -> None:
    incident = IncidentFactory(title="Original")
    url = f"/api/v1/incidents/{incident.pk}"

    def edit(index: int) -> Any:
        body = {"title": f"title {index}", "analysis_summary": f"summary {index}"}
        return api(token).put(url, body, format="json")

    responses = run_at_once(10, edit)

    assert statuses(responses) == Counter({200: 10})
    incident.refresh_from_db()
    index = incident.title.removeprefix("title ")
    assert incident.analysis_summary == f"summary {index}"


def test_concurrent_reassign_and_delivery_of_one_alert_both_succeed(
    token: str,
) -> None:
    incident = IncidentFactory()
    first = Client().post(
        "/webhook/alertmanager",
        data=json.dumps(make_payload(make_alert("Race", fingerprint="f00d"))),
        content_type="application/json",
    )
    assert first.status_code == 200
    alert = Alert.objects.get()
    repeat = json.dumps(make_payload(make_alert("Race", fingerprint="f00d")))

    def act(index: int) -> Any:
        if index % 2:
            return Client().post(
                "/webhook/alertmanager", data=repeat, content_type="application/json"
            )
        return api(token).put(
            f"/api/v1/alerts/{alert.pk}/incident",
            {"incident_id": incident.pk},
            format="json",
        )

    responses = run_at_once(8, act)

    assert statuses(responses) == Counter({200: 8})
    alert.refresh_from_db()
    assert alert.incident_id == incident.pk and alert.grouping_reason == "moved"
    assert Alert.objects.count() == 1


def test_concurrent_firing_and_resolved_deliveries_never_leave_two_rows() -> None:
    firing = make_alert("Flap", fingerprint="beef")
    resolved = make_alert("Flap", fingerprint="beef", status="resolved")
    bodies = [
        json.dumps(make_payload(resolved if i % 2 else firing)) for i in range(10)
    ]

    responses = run_at_once(
        10,
        lambda i: Client().post(
            "/webhook/alertmanager", data=bodies[i], content_type="application/json"
        ),
    )

    assert statuses(responses) == Counter({200: 10})
    assert Alert.objects.filter(fingerprint="beef").count() == 1
    # A resolved delivery that lands first stores a resolved alert and opens
    # no incident (SPEC §3.3); the firing copies are then late duplicates.
    assert Incident.objects.count() <= 1


def _refresh_cookie(username: str) -> str:
    """Log in as `username`; the refresh cookie's value."""
    login = APIClient().post(
        "/api/v1/auth/login", {"id": username, "password": PASSWORD}, format="json"
    )
    return login.cookies["kube_rca_refresh"].value


def _post_with_cookie(cookie: str, path: str) -> Any:
    client = APIClient()
    client.cookies["kube_rca_refresh"] = cookie
    return client.post(path)


def test_concurrent_refreshes_over_http_with_one_cookie_let_one_through() -> None:
    UserFactory(username="cookie")
    cookie = _refresh_cookie("cookie")

    responses = run_at_once(
        8, lambda index: _post_with_cookie(cookie, "/api/v1/auth/refresh")
    )

    assert statuses(responses) == Counter({200: 1, 401: 7})


def test_concurrent_refreshes_and_logouts_with_one_cookie_answer_as_in_turn() -> None:
    UserFactory(username="leaving")

    def race() -> tuple[str, list[Any]]:
        cookie = _refresh_cookie("leaving")

        def act(index: int) -> Any:
            path = "/api/v1/auth/" + ("logout" if index % 2 else "refresh")
            return _post_with_cookie(cookie, path)

        return cookie, run_at_once(8, act)

    # A few rounds: one pair meeting at the wrong moment is enough.
    for cookie, responses in [race() for _ in range(3)]:
        # In turn, a logout answers 200 whatever came first, and a refresh
        # 200 only before any other use of the cookie; never a 503.
        logouts, refreshes = responses[1::2], responses[::2]
        assert statuses(logouts) == Counter({200: 4})
        assert statuses(refreshes)[200] <= 1
        assert set(statuses(refreshes)) <= {200, 401}
        assert _post_with_cookie(cookie, "/api/v1/auth/refresh").status_code == 401


def test_concurrent_sign_ups_of_one_id_in_different_cases_make_one_account(
    settings,  # noqa: ANN001
) -> None:
    settings.ALLOW_SIGNUP = True
    settings.LOGIN_THROTTLE_PER_CLIENT = "100/min"
    spellings = ["newcomer", "Newcomer", "NEWCOMER", "newComer", "NewComer"] * 2

    def register(index: int) -> Any:
        return APIClient().post(
            "/api/v1/auth/register",
            {"id": spellings[index], "password": PASSWORD},
            format="json",
        )

    responses = run_at_once(len(spellings), register)

    assert statuses(responses) == Counter({200: 1, 409: len(spellings) - 1})
    assert get_user_model().objects.filter(username__iexact="newcomer").count() == 1


def test_concurrent_failed_logins_cannot_slip_past_the_throttle(settings) -> None:  # noqa: ANN001
    settings.LOGIN_THROTTLE_PER_LOGIN_ID = "5/min"
    settings.LOGIN_THROTTLE_PER_CLIENT = "100/min"
    UserFactory(username="target")

    def attempt(index: int) -> Any:
        return APIClient().post(
            "/api/v1/auth/login",
            {"id": "target", "password": "wrong-password"},
            format="json",
        )

    responses = run_at_once(12, attempt)

    assert statuses(responses) == Counter({401: 5, 429: 7})
    assert all(r.has_header("Retry-After") for r in responses if r.status_code == 429)
