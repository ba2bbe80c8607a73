"""Minimal valid alerts and analyses; traits for the states tests need."""

from datetime import timedelta

import factory
from django.utils import timezone

from alerts.models import Alert, AlertAnalysis
from incidents.tests.factories import IncidentFactory


class AlertFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Alert

    incident = factory.SubFactory(IncidentFactory)
    fingerprint = factory.Sequence(lambda n: f"{n:016x}")
    alarm_title = "KubePodCrashLooping"
    severity = "warning"
    status = "firing"
    fired_at = factory.LazyFunction(lambda: timezone.now() - timedelta(minutes=5))
    namespace = "default"
    labels = factory.LazyAttribute(
        lambda o: {
            "alertname": o.alarm_title,
            "severity": o.severity,
            **({"namespace": o.namespace} if o.namespace is not None else {}),
        }
    )
    annotations = factory.LazyAttribute(
        lambda o: {"summary": f"{o.alarm_title} in {o.namespace}"}
    )
    grouping_reason = "joined"
    last_seen_at = factory.LazyAttribute(lambda o: o.fired_at)

    class Params:
        resolved = factory.Trait(
            status="resolved",
            resolved_at=factory.LazyAttribute(
                lambda o: o.fired_at + timedelta(minutes=2)
            ),
        )


class AlertAnalysisFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AlertAnalysis

    alert = factory.SubFactory(AlertFactory)
    incident = factory.LazyAttribute(lambda o: o.alert.incident)
    status = "firing"
    state = "done"
    summary = "Pod out of memory"
    detail = "The container exceeded its memory limit."
