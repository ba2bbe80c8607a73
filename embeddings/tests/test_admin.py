"""The read-only admin pages of embeddings and of failures to embed."""

import pytest

from embeddings.models import EmbeddingFailure
from embeddings.tests.factories import SummarizedIncidentFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_static_storage")]

FAILURES = "/admin/embeddings/embeddingfailure/"


def test_failures_page_says_why_an_incident_has_no_embedding(staff_client):
    incident = SummarizedIncidentFactory(title="etcd quorum")
    failure = EmbeddingFailure.objects.create(
        incident=incident,
        model="gemini-embedding-001",
        incident_summary=incident.analysis_summary,
        permanent=True,
        attempts=1,
        reason="HTTP 400: input too long",
    )

    listing = staff_client.get(FAILURES, {"q": "too long"})
    page = staff_client.get(f"{FAILURES}{failure.pk}/change/")

    assert listing.status_code == 200
    assert list(listing.context["cl"].result_list) == [failure]
    assert page.status_code == 200
    assert "HTTP 400: input too long" in page.content.decode()
    assert staff_client.get(f"{FAILURES}add/").status_code == 403
    staff_client.post(f"{FAILURES}{failure.pk}/change/", {"permanent": ""})
    failure.refresh_from_db()
    assert failure.permanent is True


def test_an_action_on_a_malformed_selection_runs_nothing(staff_client):
    incident = SummarizedIncidentFactory()
    EmbeddingFailure.objects.create(
        incident=incident, model="m", incident_summary="s", reason="r"
    )

    response = staff_client.post(
        FAILURES,
        {"action": "delete_selected", "_selected_action": ["abc"]},
        follow=True,
    )

    assert response.status_code == 200
    assert EmbeddingFailure.objects.count() == 1
