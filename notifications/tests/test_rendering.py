from datetime import timedelta

import pytest
from django.utils import timezone

from notifications.models import MessageKind
from notifications.rendering import (
    MAX_SECTIONS,
    SECTION_LIMIT,
    TEXT_LIMIT,
    render_alerts,
    render_analysis,
    render_root,
    render_summary,
)
from notifications.tests.factories import (
    AlertAnalysisFactory,
    AlertFactory,
    IncidentFactory,
)

pytestmark = pytest.mark.django_db


def blocks_text(payload) -> str:  # noqa: ANN001
    return "\n".join(b["text"]["text"] for b in payload["attachments"][0]["blocks"])


@pytest.mark.parametrize(
    ("severity", "status", "colour", "emoji"),
    [
        ("critical", "firing", "#dc3545", ":fire:"),
        ("warning", "firing", "#ffc107", ":fire:"),
        ("info", "firing", "#17a2b8", ":fire:"),
        ("critical", "resolved", "#36a64f", ":white_check_mark:"),
    ],
)
def test_root_shows_status_severity_count_namespace_in_its_colour(
    severity, status, colour, emoji
):  # noqa: ANN001
    incident = IncidentFactory(severity=severity, status=status, title="Disk full")
    AlertFactory.create_batch(2, incident=incident, namespace="shop")
    AlertFactory(incident=incident, namespace="db", resolved=True)

    payload = render_root(incident)

    body = blocks_text(payload)
    assert payload["attachments"][0]["color"] == colour
    assert body.startswith(f"{emoji} *[{severity.upper()}] Disk full*")
    assert "*Alerts firing:* 2" in body and "*Namespace:* db, shop" in body
    assert payload["text"].startswith(emoji) and "2 firing" in payload["text"]


def test_root_names_every_namespace_however_many_alerts_share_one():
    incident = IncidentFactory()
    now = timezone.now()
    AlertFactory(incident=incident, namespace="db", fired_at=now - timedelta(hours=1))
    for minute in range(7):
        AlertFactory(
            incident=incident,
            namespace="shop",
            fired_at=now - timedelta(minutes=minute),
        )

    assert "*Namespace:* db, shop" in blocks_text(render_root(incident))


def test_root_cuts_a_long_namespace_list_with_an_ellipsis():
    incident = IncidentFactory()
    for name in ("a", "b", "c", "d", "e", "f"):
        AlertFactory.create_batch(2, incident=incident, namespace=name)

    assert "*Namespace:* a, b, c, d, e …" in blocks_text(render_root(incident))


def test_root_links_the_incident_when_frontend_url_is_set(settings):  # noqa: ANN001
    incident = IncidentFactory()
    settings.FRONTEND_URL = "https://rca.example.com"
    assert f"<https://rca.example.com/incidents/{incident.pk}|Open {incident.pk}>" in (
        blocks_text(render_root(incident))
    )
    settings.FRONTEND_URL = ""
    assert "https://" not in blocks_text(render_root(incident))


def test_firing_reply_takes_the_colour_of_its_worst_alert_and_lists_them():
    incident = IncidentFactory()
    alerts = [
        AlertFactory(incident=incident, severity="warning"),
        AlertFactory(incident=incident, severity="critical", alarm_title="NodeDown"),
    ]

    payload = render_alerts(MessageKind.ALERT_FIRING, incident, [a.pk for a in alerts])

    assert payload["attachments"][0]["color"] == "#dc3545"
    assert "*NodeDown* (critical) in `payments`" in blocks_text(payload)
    assert payload["text"].startswith("2 alerts firing")


def test_resolved_reply_is_green_and_says_more_than_it_lists(settings):  # noqa: ANN001
    settings.FRONTEND_URL = "https://rca.example.com"
    incident = IncidentFactory()
    alerts = AlertFactory.create_batch(25, incident=incident, resolved=True)

    payload = render_alerts(
        MessageKind.ALERT_RESOLVED, incident, [a.pk for a in alerts]
    )

    assert payload["attachments"][0]["color"] == "#36a64f"
    assert "25 alerts resolved" in blocks_text(payload)
    assert "…and 5 more" in blocks_text(payload)


def test_analysis_is_purple_mrkdwn_with_japanese_and_emoji():
    analysis = AlertAnalysisFactory(
        analysis="## 原因\n\n**メモリ不足** です 🔥 `kubectl top pod`"
    )

    payload = render_analysis(analysis.incident, analysis)

    assert payload["attachments"][0]["color"] == "#6f42c1"
    body = blocks_text(payload)
    assert "*原因*" in body and "*メモリ不足* です 🔥 `kubectl top pod`" in body
    assert "メモリ不足" in payload["text"]


def test_forty_thousand_character_analysis_is_cut_to_slack_limits_with_a_link(
    settings,
):  # noqa: ANN001
    settings.FRONTEND_URL = "https://rca.example.com"
    paragraph = "The **pod** restarted because the node ran out of memory. 🔥\n"
    analysis = AlertAnalysisFactory(analysis=(paragraph * 700)[:40_000])

    payload = render_analysis(analysis.incident, analysis)

    blocks = payload["attachments"][0]["blocks"]
    assert len(blocks) <= MAX_SECTIONS
    assert all(len(b["text"]["text"]) <= SECTION_LIMIT for b in blocks)
    assert len(payload["text"]) <= TEXT_LIMIT
    last = blocks[-1]["text"]["text"]
    url = f"https://rca.example.com/incidents/{analysis.incident.pk}"
    assert "…" in last and url in last


def test_a_long_code_block_cut_to_fit_closes_its_fence_before_the_link(settings):  # noqa: ANN001
    settings.FRONTEND_URL = "https://rca.example.com"
    lines = "\n".join(f"line {i} " + "x" * 50 for i in range(400))
    incident = IncidentFactory(status="resolved", analysis_summary=f"```\n{lines}\n```")

    blocks = render_summary(incident)["attachments"][0]["blocks"]

    last = blocks[-1]["text"]["text"]
    assert len(blocks) <= MAX_SECTIONS
    assert all(len(b["text"]["text"]) <= SECTION_LIMIT for b in blocks)
    assert all(b["text"]["text"].count("```") % 2 == 0 for b in blocks)
    url = f"https://rca.example.com/incidents/{incident.pk}"
    assert last.rindex("```") < last.index(url)


def test_summary_is_purple_with_a_text_fallback():
    incident = IncidentFactory(
        status="resolved", analysis_summary="# Summary\nDisk filled by **logs**."
    )

    payload = render_summary(incident)

    assert payload["attachments"][0]["color"] == "#6f42c1"
    assert "*Summary*\nDisk filled by *logs*." in blocks_text(payload)
    assert "Disk filled by" in payload["text"]


def test_titles_cannot_ping_the_channel():
    incident = IncidentFactory(title="<!channel> disk & cpu")

    payload = render_root(incident)

    assert "&lt;!channel&gt; disk &amp; cpu" in blocks_text(payload)
    assert "<!channel>" not in payload["text"]
