"""Turn an outbox row into the Slack message it stands for, from current rows.

Texts come from the templates in templates/notifications/ (`<kind>.txt` for
the mrkdwn body, `<kind>_text.txt` for the plain `text` fallback every message
carries). Bodies go in Block Kit sections inside one coloured attachment (the
colours of SPEC §4); long texts are cut to Slack's limits with "…" and a link.
"""

import re
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string

from alerts.models import Alert, AlertAnalysis, AlertStatus
from incidents.models import Incident, severity_rank
from notifications.models import MessageKind, SlackMessage
from notifications.mrkdwn import (
    FENCE,
    cut,
    ends_in_fence,
    escape,
    markdown_to_mrkdwn,
    split_chunks,
)
from notifications.slack import Attachment, SlackPayload

GREEN = "#36a64f"
RED = "#dc3545"
AMBER = "#ffc107"
BLUE = "#17a2b8"
PURPLE = "#6f42c1"

# Slack's limits: 3,000 characters per section block, 50 blocks per message;
# `text` may be longer, but a fallback is for notifications: keep it short.
SECTION_LIMIT = 3000
MAX_SECTIONS = 5
TEXT_LIMIT = 3000
ALERTS_LISTED = 20

_BLANK_LINES = re.compile(r"\n{3,}")


def severity_colour(severity: str) -> str:
    return {"critical": RED, "warning": AMBER}.get((severity or "").lower(), BLUE)


def incident_url(incident_id: str) -> str:
    """FRONTEND_URL/incidents/<id>, or "" when FRONTEND_URL is not set."""
    base = settings.FRONTEND_URL
    return f"{base}/incidents/{incident_id}" if base else ""


def _render(name: str, context: dict[str, Any]) -> str:
    text = render_to_string(f"notifications/{name}.txt", context)
    return _BLANK_LINES.sub("\n\n", text).strip()


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _payload(colour: str, fallback: str, sections: Iterable[str]) -> SlackPayload:
    text = cut(escape(fallback), TEXT_LIMIT)
    attachment: Attachment = {
        "color": colour,
        "fallback": text,
        "blocks": [_section(cut(s, SECTION_LIMIT)) for s in sections if s],
    }
    return {"text": text, "attachments": [attachment]}


def _long_sections(header: str, mrkdwn: str, incident: Incident) -> list[str]:
    """The header and a long body in sections; past MAX_SECTIONS, "…" and a link."""
    chunks = split_chunks(mrkdwn, SECTION_LIMIT) if mrkdwn.strip() else []
    if len(chunks) > MAX_SECTIONS - 1:
        more = _render("more", {"incident": incident, "url": incident_url(incident.pk)})
        kept = chunks[: MAX_SECTIONS - 1]
        # Room for a fence closing what the cut leaves open, so the link
        # after it is not shown as code.
        last = cut(kept[-1], SECTION_LIMIT - len(more) - len(FENCE) - 2, tail="")
        if ends_in_fence(last):
            last += "\n" + FENCE
        kept[-1] = last + "\n" + more
        chunks = kept
    return [header, *chunks]


def render_root(incident: Incident) -> SlackPayload:
    """The incident's root message: status, severity, title, alerts, namespace."""
    alerts = Alert.objects.filter(incident=incident)
    firing_count = alerts.filter(status=AlertStatus.FIRING).count()
    # Ordered by the name itself: under the alerts' own ordering (newest
    # first) DISTINCT would be taken over the fired_at and id it selects too,
    # and the six rows kept would be the six newest alerts' namespaces.
    namespaces = list(
        alerts.exclude(namespace__isnull=True)
        .exclude(namespace="")
        .order_by("namespace")
        .values_list("namespace", flat=True)
        .distinct()[:6]
    )
    namespace = ", ".join(namespaces[:5]) + (" …" if len(namespaces) > 5 else "")
    resolved = incident.is_resolved
    context = {
        "incident": incident,
        "emoji": ":white_check_mark:" if resolved else ":fire:",
        "status_label": "Resolved" if resolved else "Firing",
        "severity_label": f"[{(incident.severity or 'unknown').upper()}]",
        "firing_count": firing_count,
        "namespace": namespace or "-",
        "url": incident_url(incident.pk),
    }
    colour = GREEN if resolved else severity_colour(incident.severity)
    return _payload(
        colour,
        _render("incident_root_text", context),
        [_render("incident_root", context)],
    )


def render_alerts(kind: str, incident: Incident, alert_ids: list[str]) -> SlackPayload:
    """A reply listing the alerts that fired or resolved (a coalesced batch)."""
    by_id = {a.pk: a for a in Alert.objects.filter(pk__in=alert_ids[:ALERTS_LISTED])}
    listed = [
        {
            "alarm_title": a.alarm_title or a.labels.get("alertname", a.fingerprint),
            "severity": a.severity,
            "namespace": a.namespace,
            "summary": (a.annotations or {}).get("summary", ""),
            "stale": a.resolved_as_stale,
        }
        for a in (by_id.get(pk) for pk in alert_ids[:ALERTS_LISTED])
        if a is not None
    ]
    context = {
        "incident": incident,
        "alerts": listed,
        "total": len(alert_ids),
        "more": max(0, len(alert_ids) - len(listed)),
        "url": incident_url(incident.pk),
    }
    if kind == MessageKind.ALERT_RESOLVED:
        colour = GREEN
    else:
        top = max((a["severity"] for a in listed), key=severity_rank, default="warning")
        colour = severity_colour(top)
    return _payload(colour, _render(f"{kind}_text", context), [_render(kind, context)])


def render_analysis(incident: Incident, analysis: AlertAnalysis) -> SlackPayload:
    """An Agent analysis of one alert: its markdown (else its summary)."""
    markdown = analysis.analysis or analysis.summary or analysis.detail
    alert = analysis.alert
    context = {
        "incident": incident,
        "alert_title": alert.alarm_title or alert.fingerprint,
        "status": analysis.status,
        "plain": markdown,
    }
    sections = _long_sections(
        _render("analysis", context), markdown_to_mrkdwn(markdown), incident
    )
    return _payload(PURPLE, _render("analysis_text", context), sections)


def render_summary(incident: Incident) -> SlackPayload:
    """The final analysis of a resolved incident."""
    markdown = incident.analysis_summary
    context = {"incident": incident, "plain": markdown}
    sections = _long_sections(
        _render("summary", context), markdown_to_mrkdwn(markdown), incident
    )
    return _payload(PURPLE, _render("summary_text", context), sections)


def render_message(message: SlackMessage) -> SlackPayload | None:
    """What `message` says now; None when there is nothing left to say."""
    incident = Incident.objects.get(pk=message.incident_id)
    if message.kind == MessageKind.INCIDENT_ROOT:
        return render_root(incident)
    if message.kind in (MessageKind.ALERT_FIRING, MessageKind.ALERT_RESOLVED):
        if not message.alert_ids:
            return None
        return render_alerts(message.kind, incident, list(message.alert_ids))
    if message.kind == MessageKind.ANALYSIS:
        if message.analysis_id is None:
            return None
        analysis = AlertAnalysis.objects.select_related("alert").get(
            pk=message.analysis_id
        )
        if not (analysis.analysis or analysis.summary or analysis.detail).strip():
            return None
        return render_analysis(incident, analysis)
    if message.kind == MessageKind.SUMMARY:
        if not incident.analysis_summary.strip():
            return None
        return render_summary(incident)
    return None
