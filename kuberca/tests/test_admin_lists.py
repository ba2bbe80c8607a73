"""The console's list pages against query strings no link of theirs makes."""

import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_static_storage")]

# Each list with a date drill-down, and the field it drills into.
DRILL_DOWNS = [
    ("/admin/incidents/incident/", "fired_at"),
    ("/admin/alerts/alert/", "fired_at"),
    ("/admin/alerts/webhookdelivery/", "received_at"),
    ("/admin/django_tasks_database/dbtaskresult/", "enqueued_at"),
]


@pytest.mark.parametrize(("page", "field"), DRILL_DOWNS)
@pytest.mark.parametrize(
    "drill",
    [
        {"year": "9999"},
        {"year": "9999", "month": "12"},
        {"year": "9999", "month": "12", "day": "31"},
        {"year": "12345678901234567890"},
        {"year": "2026", "month": "99999999999999999999"},
    ],
)
def test_date_drill_down_past_the_calendar_shows_the_error_page(
    staff_client, page, field, drill
):
    query = {f"{field}__{part}": value for part, value in drill.items()}

    response = staff_client.get(page, query)

    assert response.status_code == 302
    assert response.url == page + "?e=1"


@pytest.mark.parametrize(("page", "field"), DRILL_DOWNS)
def test_date_drill_down_into_a_real_day_lists_it(staff_client, page, field):
    query = {f"{field}__year": "2026", f"{field}__month": "2", f"{field}__day": "28"}

    response = staff_client.get(page, query)

    assert response.status_code == 200


def test_view_site_is_offered_only_when_there_is_a_frontend(staff_client, settings):
    # kuberca's own `/` is a JSON health answer, no page for a person.
    from django.contrib import admin

    assert settings.FRONTEND_URL == ""
    page = staff_client.get("/admin/")

    assert page.status_code == 200
    assert admin.site.site_url is None
    assert "View site" not in page.content.decode()
