"""The admin of people, groups and revoked tokens: an action on a
malformed selection runs nothing (kuberca.admin.CheckedSelection)."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_static_storage")]


@pytest.mark.parametrize(
    "changelist",
    [
        "/admin/auth/user/",
        "/admin/auth/group/",
        "/admin/token_blacklist/blacklistedtoken/",
    ],
)
def test_an_action_on_a_malformed_selection_runs_nothing(staff_client, changelist):  # noqa: ANN001
    response = staff_client.post(
        changelist,
        {"action": "delete_selected", "_selected_action": ["abc"]},
        follow=True,
    )

    assert response.status_code == 200
    assert any("not valid here" in str(m) for m in get_messages(response.wsgi_request))
    assert get_user_model().objects.filter(username="operator").exists()
