"""The console's paginator: exact counts when small, no COUNT of a huge table."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from incidents.models import Incident
from incidents.tests.factories import IncidentFactory
from kuberca.admin import EstimatedCountPaginator

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_limit(monkeypatch):  # noqa: ANN001, ANN201
    monkeypatch.setattr(EstimatedCountPaginator, "exact_limit", 5)


def analyse_incidents() -> None:
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE incidents_incident")


def test_paginator_counts_exactly_below_the_limit(small_limit):
    IncidentFactory.create_batch(4)

    paginator = EstimatedCountPaginator(Incident.objects.all(), 2)

    assert paginator.count == 4
    assert paginator.num_pages == 2


def test_paginator_trusts_the_estimate_of_a_big_unfiltered_table(small_limit):
    IncidentFactory.create_batch(8)
    analyse_incidents()

    with CaptureQueriesContext(connection) as queries:
        count = EstimatedCountPaginator(Incident.objects.all(), 2).count

    assert count == 8
    assert not any("COUNT(" in q["sql"].upper() for q in queries.captured_queries)


@pytest.mark.parametrize(("estimate", "expected"), [(0, 6), (100, 100)])
def test_paginator_caps_the_count_of_a_filtered_list(
    small_limit, monkeypatch, estimate, expected
):
    monkeypatch.setattr("kuberca.admin.table_estimate", lambda queryset: estimate)
    IncidentFactory.create_batch(8, severity="critical")
    IncidentFactory.create_batch(2, severity="info")

    with CaptureQueriesContext(connection) as queries:
        count = EstimatedCountPaginator(
            Incident.objects.filter(severity="critical"), 2
        ).count

    # Past the cap: the larger of "more than 5" and the table's estimate.
    assert count == expected
    assert any("LIMIT 6" in q["sql"] for q in queries.captured_queries)


def test_paginator_counts_a_small_filtered_list_exactly(small_limit):
    IncidentFactory.create_batch(8, severity="critical")
    IncidentFactory.create_batch(2, severity="info")
    analyse_incidents()

    count = EstimatedCountPaginator(Incident.objects.filter(severity="info"), 2).count

    assert count == 2
