"""IncidentEmbedding: the vector of an incident's summary, for one model.

There is one current row per incident and embedding model: re-embedding
replaces it (an upsert on that pair). The column's dimension is
EMBEDDING_DIMENSIONS at migration time; its HNSW index is created by SQL in
embeddings.schema, not by Meta, so it can be an expression index on halfvec.
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
