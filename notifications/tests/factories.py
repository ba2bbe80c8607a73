"""Minimal valid rows for the notifications tests."""

import factory
from django.utils import timezone

from alerts.models import Alert, AlertAnalysis, AlertStatus
from incidents.models import Incident
from notifications.models import MessageKind, SlackMessage


class IncidentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Incident

    title = factory.Sequence(lambda n: f"KubePodCrashLooping in payments {n}")
    severity = "warning"
    fired_at = factory.LazyFunction(lambda: timezone.now())
    group_key = "prod|payments"

    class Params:
        resolved = factory.Trait(
            status="resolved",
            resolved_at=factory.LazyFunction(lambda: timezone.now()),
            resolved_by="alertmanager",
        )


class AlertFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Alert

    incident = factory.SubFactory(IncidentFactory)
    fingerprint = factory.Sequence(lambda n: f"fp{n:08x}")
    alarm_title = "KubePodCrashLooping"
    severity = "warning"
    status = AlertStatus.FIRING
    fired_at = factory.LazyFunction(lambda: timezone.now())
    last_seen_at = factory.LazyFunction(lambda: timezone.now())
    namespace = "payments"
    labels = factory.LazyAttribute(
        lambda a: {
            "alertname": a.alarm_title,
            "severity": a.severity,
            "namespace": a.namespace,
        }
    )
    annotations = factory.LazyFunction(lambda: {"summary": "Pod api-0 restarts"})

    class Params:
        resolved = factory.Trait(
            status=AlertStatus.RESOLVED,
            resolved_at=factory.LazyFunction(lambda: timezone.now()),
        )


class AlertAnalysisFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AlertAnalysis

    alert = factory.SubFactory(AlertFactory)
    incident = factory.SelfAttribute("alert.incident")
    status = "firing"
    state = "done"
    summary = "The pod runs out of memory."
    analysis = "## Root cause\n\nThe pod runs out of **memory**."


class SlackMessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SlackMessage

    incident = factory.SubFactory(IncidentFactory)
    kind = MessageKind.INCIDENT_ROOT
    channel = "C0KUBERCA"
