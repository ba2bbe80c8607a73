"""Minimal valid incidents; traits for the states tests need."""

from datetime import timedelta

import factory
from django.utils import timezone

from incidents.models import Incident


class IncidentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Incident

    title = factory.Sequence(lambda n: f"Incident {n}")
    severity = "warning"
    status = "firing"
    fired_at = factory.LazyFunction(lambda: timezone.now() - timedelta(minutes=5))
    group_key = "cluster=prod,namespace=default"
    last_alert_at = factory.LazyAttribute(lambda o: o.fired_at)

    class Params:
        resolved = factory.Trait(
            status="resolved",
            resolved_at=factory.LazyAttribute(
                lambda o: o.fired_at + timedelta(minutes=3)
            ),
            resolved_by="alertmanager",
        )
        hidden = factory.Trait(is_enabled=False)
