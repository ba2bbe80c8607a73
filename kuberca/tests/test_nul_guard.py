"""Requests holding a NUL character answer a JSON 400, never a database error.

PostgreSQL text cannot hold NUL, so whatever part of the request it is in
(path, query string, cookie, form field) it can only be refused. The webhook keeps
its raw body and the API names its own parameters, so both are left alone.
"""

import pytest
from django.test import Client

from alerts.models import WebhookDelivery
from alerts.tests.factories import AlertFactory
from incidents.models import Incident
from incidents.tests.factories import IncidentFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_static_storage")]


def assert_nul_refused(response) -> None:
    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"] == "bad request"
    assert "NUL" in response.json()["detail"]


@pytest.mark.parametrize(
    "url",
    [
        "/admin/incidents/incident/?severity=%00",
        "/admin/incidents/incident/?namespace=%00",
        "/admin/alerts/alert/?severity=%00",
        "/admin/alerts/alert/?namespace=%00",
        "/admin/alerts/alert/?incident=%00",
        "/admin/alerts/alertanalysis/?state=%00",
        "/admin/alerts/alertanalysis/?incident=%00",
        "/admin/incidents/incident/%00/change/",
        "/admin/alerts/alert/ALR-%00/change/",
    ],
)
def test_admin_page_with_nul_in_path_or_query_is_400(staff_client, url):
    assert_nul_refused(staff_client.get(url))


@pytest.mark.parametrize(
    ("changelist", "action"),
    [
        ("/admin/alerts/alert/", "move_to_incident"),
        ("/admin/incidents/incident/", "merge"),
        ("/admin/incidents/incident/", "resolve"),
        ("/admin/alerts/webhookdelivery/", "replay"),
    ],
)
def test_admin_action_with_nul_in_selection_is_400(staff_client, changelist, action):
    incident = IncidentFactory()
    AlertFactory(incident=incident)
    response = staff_client.post(
        changelist,
        {"action": action, "_selected_action": [incident.pk, "\x00"], "post": "yes"},
    )
    assert_nul_refused(response)
    assert Incident.objects.get(pk=incident.pk).status == "firing"


def test_admin_session_cookie_with_nul_is_400():
    # A quoted cookie value's octal escapes are decoded: "\000" is a NUL.
    client = Client(HTTP_COOKIE='sessionid="\\000\\000abcdefgh"')
    assert_nul_refused(client.get("/admin/"))


def test_admin_filter_without_nul_still_filters(staff_client):
    IncidentFactory(title="Critical one", severity="critical")
    response = staff_client.get("/admin/incidents/incident/?severity=critical")
    assert response.status_code == 200
    assert b"Critical one" in response.content


def test_webhook_form_body_with_nul_reaches_the_webhook_and_is_kept(client):
    response = client.post(
        "/webhook/alertmanager?x=%00",
        "alerts=%00",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.json()["error"] == "invalid payload"
    assert bytes(WebhookDelivery.objects.get().body) == b"alerts=%00"


def test_api_query_with_nul_still_names_the_parameter(auth_client):
    response = auth_client.get("/api/v1/alerts?namespace=%00")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("namespace:")
