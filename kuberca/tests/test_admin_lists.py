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


def _every_list() -> list:
    from django.contrib import admin

    return [
        pytest.param(
            f"/admin/{model._meta.app_label}/{model._meta.model_name}/",
            model._meta.pk.name,
            id=model._meta.label,
        )
        for model in admin.site._registry
    ]


@pytest.mark.parametrize(("page", "pk"), _every_list())
@pytest.mark.parametrize(
    ("lookup", "value"),
    [
        ("regex", "("),
        ("iregex", "[a"),
        ("range", "1"),
        ("trigram_similar", "x"),
        ("contained_by", "{"),
        ("iso_year", "-1"),
        ("startswith", "a"),
    ],
)
def test_a_lookup_no_list_offers_is_a_json_400_before_any_query(
    staff_client, page, pk, lookup, value
):
    response = staff_client.get(page, {f"{pk}__{lookup}": value})

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "bad request"


@pytest.mark.parametrize(("page", "pk"), _every_list())
@pytest.mark.parametrize(
    ("lookup", "value"), [("range", "1"), ("trigram_similar", "x")]
)
def test_a_lookup_no_list_offers_is_refused_after_pk_too(
    staff_client, page, pk, lookup, value
):
    response = staff_client.get(page, {f"pk__{lookup}": value})

    assert response.status_code == 400
    assert response.json()["error"] == "bad request"


@pytest.mark.parametrize(
    "query",
    [
        {"alert_count__range": "1"},
        {"alert_count__regex": "("},
        {"slack_channel__trigram_similar": "x"},
    ],
)
def test_a_lookup_no_list_offers_is_refused_after_a_lists_annotation(
    staff_client, query
):
    response = staff_client.get("/admin/incidents/incident/", query)

    assert response.status_code == 400
    assert response.json()["error"] == "bad request"


@pytest.mark.parametrize(
    ("page", "query"),
    [
        ("/admin/incidents/incident/", {"pk__in": "INC-1,INC-2"}),
        ("/admin/incidents/incident/", {"alert_count__gte": "2"}),
        ("/admin/alerts/alert/", {"incident__pk__exact": "INC-1"}),
        ("/admin/alerts/alert/", {"incident__isnull": "True"}),
    ],
)
def test_pk_and_annotations_take_the_lookups_of_fields(staff_client, page, query):
    response = staff_client.get(page, query)

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("page", "query"),
    [
        ("/admin/auth/user/", {"date_joined__year": "99999999999"}),
        ("/admin/auth/user/", {"last_login__year": "99999999999"}),
        ("/admin/token_blacklist/blacklistedtoken/", {"blacklisted_at__year": "1e3"}),
        (
            "/admin/token_blacklist/outstandingtoken/",
            {"expires_at__year": "99999999999"},
        ),
    ],
)
def test_a_date_part_past_the_calendar_shows_the_error_page(staff_client, page, query):
    response = staff_client.get(page, query)

    assert response.status_code == 302
    assert response.url == page + "?e=1"


@pytest.mark.parametrize(
    ("page", "query"),
    [
        ("/admin/auth/user/", {"groups__id__exact": "1", "is_staff__exact": "1"}),
        ("/admin/auth/user/", {"is_active__exact": "0"}),
        ("/admin/incidents/incident/", {"status__exact": "firing", "severity": "x"}),
        (
            "/admin/incidents/incident/",
            {
                "fired_at__gte": "2026-01-01 00:00:00+00:00",
                "fired_at__lt": "2026-02-01 00:00:00+00:00",
            },
        ),
        ("/admin/incidents/incident/", {"fired_at__isnull": "True"}),
        ("/admin/alerts/alert/", {"incident": "INC-1", "grouping_reason__exact": "x"}),
        ("/admin/alerts/webhookdelivery/", {"http_status": "200"}),
        ("/admin/alerts/webhookdelivery/", {"http_status__isnull": "True"}),
        ("/admin/alerts/alertanalysis/", {"trigger__exact": "x", "state__exact": "y"}),
        ("/admin/embeddings/embeddingfailure/", {"permanent__exact": "1"}),
    ],
)
def test_the_lookups_of_a_lists_own_filters_still_list(staff_client, page, query):
    response = staff_client.get(page, query)

    assert response.status_code == 200


def test_a_refused_admin_query_is_json_with_debug_on_too(staff_client, settings):
    # With DEBUG on (`make run`), Django's 400 is its debug page: a traceback.
    settings.DEBUG = True

    for query in ({"_to_field": "x"}, {"alerts__labels__foo": "x"}):
        response = staff_client.get("/admin/incidents/incident/", query)

        assert response.status_code == 400
        assert response["Content-Type"] == "application/json"
        assert "Traceback" not in response.content.decode()
