"""IncidentEmbedding: the vector of an incident's summary, for one model.

There is one current row per incident and embedding model: re-embedding
replaces it (an upsert on that pair). The column's dimension is
EMBEDDING_DIMENSIONS at migration time; its HNSW index is created by SQL in
embeddings.schema, not by Meta, so it can be an expression index on halfvec.
EmbeddingFailure remembers why an incident's summary has no embedding yet, so
recovery neither asks again for a text the provider refused nor starts a
second round of retries while one is under way.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone
from pgvector.django import VectorField

from incidents.models import Incident


class IncidentEmbedding(models.Model):
    incident = models.ForeignKey(
        Incident,
        on_delete=models.CASCADE,
        related_name="embeddings",
        # The unique (incident, model) index serves lookups by incident.
        db_index=False,
    )
    # The text that was embedded.
    incident_summary = models.TextField()
    embedding = VectorField(dimensions=settings.EMBEDDING_DIMENSIONS)
    model = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "model"], name="embedding_one_per_incident_model"
            )
        ]

    def __str__(self) -> str:
        return f"{self.incident_id} {self.model}"


class EmbeddingFailure(models.Model):
    """The last failure to embed an incident's summary text for one model.

    Dropped once an embedding for the model is stored. It holds for that text
    only: a new summary is embedded afresh.
    """

    incident = models.ForeignKey(
        Incident,
        on_delete=models.CASCADE,
        related_name="embedding_failures",
        db_index=False,
    )
    model = models.CharField(max_length=100)
    # The text the provider failed on.
    incident_summary = models.TextField()
    # Refused by the provider (4xx, malformed answer): not asked again.
    permanent = models.BooleanField(default=False)
    attempts = models.IntegerField(default=0)
    reason = models.TextField(blank=True, default="")
    # Until when recovery leaves it alone: the next retry's time (and a
    # margin), or a pause after the retries ran out. None when permanent.
    retry_after = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "model"], name="embedding_failure_per_model"
            )
        ]

    def __str__(self) -> str:
        return f"{self.incident_id} {self.model}"
