"""The alert, analysis and delivery admin of the triage console."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.messages import get_messages
from django.db.models.signals import post_save
from django.urls import reverse

from alerts.admin import BODY_SHOWN_BYTES
from alerts.models import Alert, AlertAnalysis, AnalysisArtifact, WebhookDelivery
from alerts.tests.factories import AlertAnalysisFactory, AlertFactory
from alerts.tests.webhook_helpers import make_alert, make_payload
from incidents.models import Incident
from incidents.tests.assertions import assert_alert_moved
from incidents.tests.factories import IncidentFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_static_storage")]

ALERTS = "/admin/alerts/alert/"
DELIVERIES = "/admin/alerts/webhookdelivery/"
ANALYSES = "/admin/alerts/alertanalysis/"
BASE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LIST_MAX_QUERIES = 10
CHANGE_MAX_QUERIES = 12


def messages_of(response) -> list[str]:  # noqa: ANN001
    return [str(m) for m in get_messages(response.wsgi_request)]


def make_alerts(count: int) -> list[Alert]:
    incident = IncidentFactory(fired_at=BASE)
    return Alert.objects.bulk_create(
        Alert(
            incident=incident if n % 2 else None,
            fingerprint=f"{n:016x}",
            alarm_title="KubePodCrashLooping",
            severity=("critical", "warning", "info")[n % 3],
            status="firing" if n % 2 else "resolved",
            fired_at=BASE + timedelta(seconds=n),
            resolved_at=None if n % 2 else BASE + timedelta(seconds=n + 60),
            last_seen_at=BASE,
            namespace=f"ns{n % 3}",
            labels={"alertname": "KubePodCrashLooping", "pod": f"p{n}"},
            grouping_reason="joined",
        )
        for n in range(count)
    )


def make_delivery(body: bytes, **fields) -> WebhookDelivery:  # noqa: ANN003
    return WebhookDelivery.objects.create(
        body=body,
        body_size=len(body),
        headers={"content-type": "application/json"},
        receiver="kuberca",
        **fields,
    )


# Alerts -----------------------------------------------------------------------


QUERIES = [
    "",
    "?status__exact=firing",
    "?severity=critical",
    "?namespace=ns1",
    "?incident=none",
    "?grouping_reason__exact=joined",
    "?fired_at__year=2026",
    "?q=KubePodCrashLooping",
    "?q=p17",
    "?q=pod%3Dp3",
]


def test_alert_list_renders_500_rows_in_bounded_queries(
    staff_client, django_assert_max_num_queries
):
    make_alerts(500)

    for query in QUERIES:
        with django_assert_max_num_queries(LIST_MAX_QUERIES):
            response = staff_client.get(ALERTS + query)
        assert response.status_code == 200


def test_alert_list_filters_by_incident_and_searches_label_values(staff_client):
    alert = AlertFactory(labels={"alertname": "X", "pod": "api-7"})
    AlertFactory()

    by_incident = staff_client.get(ALERTS, {"incident": alert.incident_id})
    by_label = staff_client.get(ALERTS, {"q": "api-7"})
    by_pair = staff_client.get(ALERTS, {"q": "pod=api-7"})
    by_incident_id = staff_client.get(ALERTS, {"q": alert.incident_id.lower()})

    for response in (by_incident, by_label, by_pair, by_incident_id):
        assert [a.pk for a in response.context["cl"].result_list] == [alert.pk]


def test_alert_change_page_shows_labels_as_a_table_and_its_analyses(staff_client):
    alert = AlertFactory(
        labels={"alertname": "OOMKilled", "pod": "api-7"},
        annotations={"summary": "Killed <b>hard</b>"},
        analysis_summary="**memory** limit",
    )
    analysis = AlertAnalysisFactory(alert=alert, summary="Raise the *limit*")
    AnalysisArtifact.objects.create(
        analysis=analysis, artifact_type="logs", query="kubectl logs", result={"a": 1}
    )

    response = staff_client.get(reverse("admin:alerts_alert_change", args=[alert.pk]))

    assert response.status_code == 200
    content = response.content.decode()
    assert '<th scope="row" style="width:25%">pod</th>' in content
    assert "api-7" in content
    assert "Killed &lt;b&gt;hard&lt;/b&gt;" in content  # annotations escaped
    assert '{"alertname"' not in content  # no raw JSON
    assert "<strong>memory</strong> limit" in content
    assert "Raise the <em>limit</em>" in content
    assert "kubectl logs" in content


def test_alert_change_page_with_many_analyses_costs_bounded_queries(
    staff_client, django_assert_max_num_queries
):
    alert = AlertFactory()
    analyses = AlertAnalysis.objects.bulk_create(
        AlertAnalysis(alert=alert, status="firing", trigger="manual", state="done")
        for _ in range(50)
    )
    AnalysisArtifact.objects.bulk_create(
        AnalysisArtifact(analysis=a, artifact_type="log") for a in analyses
    )

    with django_assert_max_num_queries(CHANGE_MAX_QUERIES):
        response = staff_client.get(
            reverse("admin:alerts_alert_change", args=[alert.pk])
        )

    assert response.status_code == 200


def test_analysis_list_and_change_pages_render(staff_client):
    analysis = AlertAnalysisFactory(state="failed", error="agent said 500")
    AnalysisArtifact.objects.create(analysis=analysis, artifact_type="promql")

    listing = staff_client.get(ANALYSES, {"state__exact": "failed"})
    page = staff_client.get(
        reverse("admin:alerts_alertanalysis_change", args=[analysis.pk])
    )

    assert [a.pk for a in listing.context["cl"].result_list] == [analysis.pk]
    assert page.status_code == 200
    assert "agent said 500" in page.content.decode()


def test_alert_admin_pages_refuse_non_staff_users(client, user):
    alert = AlertFactory()
    delivery = make_delivery(b"{}")
    client.force_login(user)

    for url in (
        ALERTS,
        reverse("admin:alerts_alert_change", args=[alert.pk]),
        DELIVERIES,
        reverse("admin:alerts_webhookdelivery_change", args=[delivery.pk]),
        ANALYSES,
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_move_asks_for_the_target_incident(staff_client):
    alert = AlertFactory()
    target = IncidentFactory()

    response = staff_client.post(
        ALERTS, {"action": "move_to_incident", "_selected_action": [alert.pk]}
    )

    assert response.status_code == 200
    content = response.content.decode()
    assert 'name="incident_id"' in content
    assert f'<option value="{target.pk}">' in content
    alert.refresh_from_db()
    assert alert.grouping_reason == "joined"


@pytest.mark.parametrize("typed", [str.strip, str.lower, str.upper])
def test_move_action_moves_alerts_like_the_api(staff_client, typed):
    alert = AlertFactory()
    target = IncidentFactory()

    response = staff_client.post(
        ALERTS,
        {
            "action": "move_to_incident",
            "_selected_action": [alert.pk],
            "post": "yes",
            # An id as search takes it: the prefix and the hex in any case.
            "incident_id": typed(f" {target.pk} "),
        },
        follow=True,
    )

    assert_alert_moved(alert.pk, target.pk)
    assert messages_of(response) == [f"Moved 1 alert(s) to {target.pk}: {alert.pk}."]


def test_move_action_rejects_an_unknown_incident(staff_client):
    alert = AlertFactory()
    source = alert.incident_id

    response = staff_client.post(
        ALERTS,
        {
            "action": "move_to_incident",
            "_selected_action": [alert.pk],
            "post": "yes",
            "incident_id": "INC-ffffffff",
        },
        follow=True,
    )

    alert.refresh_from_db()
    assert alert.incident_id == source
    assert messages_of(response)[0].startswith("Move refused")
    assert Incident.objects.filter(pk="INC-ffffffff").exists() is False


def test_rerun_analysis_action_creates_a_manual_analysis(staff_client):
    alert = AlertFactory()

    response = staff_client.post(
        ALERTS,
        {"action": "rerun_analysis", "_selected_action": [alert.pk]},
        follow=True,
    )

    analysis = AlertAnalysis.objects.get(alert=alert)
    assert (analysis.trigger, analysis.state, analysis.status) == (
        "manual",
        "pending",
        "firing",
    )
    assert messages_of(response) == [f"Analysis requested for 1 alert(s): {alert.pk}."]


def test_rerun_analysis_action_reports_a_disabled_agent(staff_client, settings):
    settings.AGENT_ENABLED = False
    alert = AlertFactory()

    response = staff_client.post(
        ALERTS,
        {"action": "rerun_analysis", "_selected_action": [alert.pk]},
        follow=True,
    )

    assert not AlertAnalysis.objects.filter(alert=alert).exists()
    assert messages_of(response)[0].startswith("Analysis not requested")


@pytest.mark.parametrize(
    ("action", "sender", "verb"),
    [
        ("move_to_incident", Alert, "Moved 1 alert(s) to {target}: {kept}."),
        ("rerun_analysis", AlertAnalysis, "Analysis requested for 1 alert(s): {kept}."),
    ],
)
def test_action_skips_an_alert_deleted_while_it_runs(
    staff_client, action, sender, verb
):
    """Pruned meanwhile: the others are still moved or analysed, and the
    message says which, instead of "refused" after some were done."""
    target = IncidentFactory()
    ids = {AlertFactory().pk, AlertFactory().pk}

    def delete_the_other(sender, instance, **kwargs):  # noqa: ANN001, ANN003
        done = instance.pk if sender is Alert else instance.alert_id
        Alert.objects.filter(pk__in=ids - {done}).delete()

    post_save.connect(delete_the_other, sender=sender)
    try:
        response = staff_client.post(
            ALERTS,
            {
                "action": action,
                "_selected_action": sorted(ids),
                "post": "yes",
                "incident_id": target.pk,
            },
            follow=True,
        )
    finally:
        post_save.disconnect(delete_the_other, sender=sender)

    assert response.status_code == 200
    (kept,) = Alert.objects.filter(pk__in=ids).values_list("pk", flat=True)
    (gone,) = ids - {kept}
    assert messages_of(response) == [
        verb.format(target=target.pk, kept=kept),
        f"Skipped 1 no longer there: {gone}.",
    ]
    if action == "move_to_incident":
        assert_alert_moved(kept, target.pk)
    else:
        assert AlertAnalysis.objects.filter(alert_id=kept).exists()


def test_alerts_cannot_be_added_or_deleted_by_hand(staff_client):
    alert = AlertFactory()

    add = staff_client.get(ALERTS + "add/")
    delete = staff_client.get(reverse("admin:alerts_alert_delete", args=[alert.pk]))

    assert add.status_code == 403
    assert delete.status_code == 403


# Deliveries -------------------------------------------------------------------


def test_delivery_list_renders_500_rows_in_bounded_queries(
    staff_client, django_assert_max_num_queries
):
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            body=b"{}", outcome=("processed", "rejected", "failed")[n % 3], stored=n
        )
        for n in range(500)
    )

    for query in ("", "?outcome__exact=failed", "?q=kuberca"):
        with django_assert_max_num_queries(LIST_MAX_QUERIES):
            response = staff_client.get(DELIVERIES + query)
        assert response.status_code == 200


def test_delivery_page_pretty_prints_a_json_body(staff_client):
    body = json.dumps({"receiver": "kuberca", "alerts": [{"status": "firing"}]})
    delivery = make_delivery(body.encode(), outcome="processed")

    response = staff_client.get(
        reverse("admin:alerts_webhookdelivery_change", args=[delivery.pk])
    )

    content = response.content.decode()
    assert "{\n  &quot;receiver&quot;: &quot;kuberca&quot;," in content
    assert "content-type" in content


def test_delivery_page_shows_a_lone_surrogate_escape_replaced(staff_client):
    # JSON allows "\\ud800" and the webhook takes it; no UTF-8 page can hold it.
    body = b'{"receiver": "kuberca", "alerts": [{"annotations": {"s": "a\\ud800b"}}]}'
    delivery = make_delivery(body, outcome="processed")

    response = staff_client.get(
        reverse("admin:alerts_webhookdelivery_change", args=[delivery.pk])
    )

    assert response.status_code == 200
    assert "&quot;a\ufffdb&quot;" in response.content.decode()


def test_delivery_page_shows_broken_bytes_replaced_and_caps_the_size(staff_client):
    broken = make_delivery(b"not json \xff\xfe <script>", outcome="rejected")
    huge = make_delivery(b"x" * (BODY_SHOWN_BYTES + 10), outcome="rejected")

    broken_page = staff_client.get(
        reverse("admin:alerts_webhookdelivery_change", args=[broken.pk])
    )
    huge_page = staff_client.get(
        reverse("admin:alerts_webhookdelivery_change", args=[huge.pk])
    )

    assert "not json \ufffd\ufffd &lt;script&gt;" in broken_page.content.decode()
    assert "Showing the first 256 KiB." in huge_page.content.decode()
    assert "x" * (BODY_SHOWN_BYTES + 1) not in huge_page.content.decode()


def test_replay_action_processes_the_stored_body(staff_client):
    payload = make_payload(make_alert("NodeDiskFull", fingerprint="ab12cd34"))
    delivery = make_delivery(json.dumps(payload).encode())

    response = staff_client.post(
        DELIVERIES,
        {"action": "replay", "_selected_action": [delivery.pk]},
        follow=True,
    )

    assert Alert.objects.filter(fingerprint="ab12cd34").count() == 1
    assert messages_of(response) == [
        f"Replayed delivery {delivery.pk}: 1 stored, 0 duplicate(s), 0 ignored,"
        " 0 rejected."
    ]


def test_replay_action_reports_a_body_that_was_cut(staff_client):
    delivery = make_delivery(b'{"alerts": [', body_truncated=True)

    response = staff_client.post(
        DELIVERIES,
        {"action": "replay", "_selected_action": [delivery.pk]},
        follow=True,
    )

    assert not Alert.objects.exists()
    assert messages_of(response)[0].startswith(
        f"Replay of delivery {delivery.pk} answered 413"
    )


@pytest.mark.parametrize("selection", [["abc"], ["{pk}", "abc"], ["1.5"]])
def test_replay_action_with_a_malformed_id_replays_nothing(staff_client, selection):
    payload = make_payload(make_alert("NodeDiskFull", fingerprint="ab12cd34"))
    delivery = make_delivery(json.dumps(payload).encode())
    selected = [value.format(pk=delivery.pk) for value in selection]

    response = staff_client.post(
        DELIVERIES, {"action": "replay", "_selected_action": selected}
    )

    assert response.status_code == 302
    assert not Alert.objects.exists()
    assert messages_of(response) == [
        "The selection holds an id that is not valid here. No items have been changed."
    ]


def test_machine_written_pages_offer_no_save_and_ignore_a_post(staff_client):
    alert = AlertFactory(alarm_title="OOMKilled")
    url = reverse("admin:alerts_alert_change", args=[alert.pk])
    updated_at = alert.updated_at

    page = staff_client.get(url)
    posted = staff_client.post(
        url, {"alarm_title": "changed", "analyses-TOTAL_FORMS": "0"}
    )

    assert 'name="_save"' not in page.content.decode()
    assert posted.status_code in {200, 302}
    alert.refresh_from_db()
    assert (alert.alarm_title, alert.updated_at) == ("OOMKilled", updated_at)


def test_namespace_filter_lists_each_namespace_once_in_order(staff_client):
    for n, namespace in enumerate(["web", "db", "web", None, "", "api", "db"]):
        AlertFactory(namespace=namespace, fingerprint=f"ns{n}")

    assert Alert.objects.namespaces(limit=10) == ["api", "db", "web"]
    assert Alert.objects.namespaces(limit=2) == ["api", "db"]
    response = staff_client.get(ALERTS)
    assert response.status_code == 200
    page = response.content.decode()
    for namespace in ("api", "db", "web"):
        assert page.count(f"?namespace={namespace}") == 1, namespace
