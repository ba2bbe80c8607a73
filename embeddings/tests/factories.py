"""Embeddings, and the minimal incidents and alerts the search tests need."""

import factory
from django.conf import settings
from django.utils import timezone

from alerts.models import Alert
from embeddings.models import IncidentEmbedding
from embeddings.tests.fake_gemini import fake_vector
from incidents.tests.factories import IncidentFactory


class SummarizedIncidentFactory(IncidentFactory):
    """A resolved incident whose final analysis stored a summary."""

    status = "resolved"
    resolved_at = factory.LazyAttribute(lambda o: o.fired_at)
    resolved_by = "alertmanager"
    summary_status = "done"
    analysis_summary = factory.Sequence(lambda n: f"Summary {n}")


class AlertFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Alert

    incident = factory.SubFactory(IncidentFactory)
    fingerprint = factory.Sequence(lambda n: f"emb{n:013x}")
    alarm_title = "KubePodCrashLooping"
    status = "resolved"
    fired_at = factory.LazyFunction(timezone.now)
    last_seen_at = factory.LazyAttribute(lambda o: o.fired_at)
    labels = factory.LazyAttribute(lambda o: {"alertname": o.alarm_title})


class IncidentEmbeddingFactory(factory.django.DjangoModelFactory):
    """An embedding as FakeGemini would have made it for the summary."""

    class Meta:
        model = IncidentEmbedding

    incident = factory.SubFactory(SummarizedIncidentFactory)
    incident_summary = factory.LazyAttribute(lambda o: o.incident.analysis_summary)
    model = factory.LazyFunction(lambda: settings.EMBEDDING_MODEL)
    embedding = factory.LazyAttribute(
        lambda o: fake_vector(o.incident_summary, settings.EMBEDDING_DIMENSIONS)
    )
