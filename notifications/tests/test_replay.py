"""Replaying real Alertmanager deliveries gives the expected Slack threads."""

from pathlib import Path

import pytest
from django.conf import settings as django_settings

from alerts.models import Alert
from alerts.services import delivery_ingest
from incidents.models import Incident
from notifications.models import MessageKind, SlackMessage
from notifications.tests.helpers import unsent

pytestmark = pytest.mark.django_db

FIXTURES = (
    Path(django_settings.BASE_DIR)
    / "tests"
    / "fixtures"
    / "alertmanager"
    / "outage-sequence"
)


def test_outage_sequence_gives_roots_edits_and_thread_replies_in_order(
    fake_slack, clock, run_tasks, django_capture_on_commit_callbacks
):  # noqa: ANN001
    for path in sorted(FIXTURES.glob("*.json")):
        with django_capture_on_commit_callbacks(execute=True):
            delivery_ingest(body=path.read_bytes(), headers={}, source_address=None)
        run_tasks()
        clock.advance(2)
    clock.advance(60)
    run_tasks()

    assert unsent() == 0
    incidents = list(Incident.objects.all())
    roots = {
        m.incident_id: m
        for m in SlackMessage.objects.filter(kind=MessageKind.INCIDENT_ROOT)
    }
    assert set(roots) == {i.pk for i in incidents}
    assert len(fake_slack.roots()) == len(incidents) == 3
    order = list(fake_slack.messages)
    for incident in incidents:
        root = roots[incident.pk]
        thread = fake_slack.thread(root.ts)
        assert thread, incident.title
        assert all(order.index(root.ts) < order.index(m.ts) for m in thread)
        assert set(
            Alert.objects.filter(incident=incident).values_list("thread_ts", flat=True)
        ) == {root.ts}

    shop = Incident.objects.filter(alerts__namespace="shop").distinct().get()
    shop_root = fake_slack.messages[roots[shop.pk].ts]
    assert shop.status == "resolved"
    assert shop_root.edits, "the shop root is edited as alerts join and resolve"
    assert shop_root.attachments[0]["color"] == "#36a64f"
    texts = [m.text for m in fake_slack.thread(roots[shop.pk].ts)]
    fired = sum(
        len(m.alert_ids)
        for m in SlackMessage.objects.filter(incident=shop, kind="alert_firing")
    )
    resolved = sum(
        len(m.alert_ids)
        for m in SlackMessage.objects.filter(incident=shop, kind="alert_resolved")
    )
    assert fired == 4 and resolved == 4, texts
    assert len(fake_slack.posts()) == len(SlackMessage.objects.all())
