import django.db.models.deletion
import django.utils.timezone
import pgvector.django.vector
from django.conf import settings
from django.db import migrations, models

from embeddings import schema

# The column takes EMBEDDING_DIMENSIONS as it is when this migration runs; to
# change it later use `manage.py resize_embeddings` (docs/embeddings.md).
DIMENSIONS = settings.EMBEDDING_DIMENSIONS


class Migration(migrations.Migration):
    dependencies = [
        ("embeddings", "0001_vector_extension"),
        ("incidents", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="IncidentEmbedding",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True,
                        primary_key=True,
                        serialize=False,
                        verbose_name="ID",
                    ),
                ),
                ("incident_summary", models.TextField()),
                (
                    "embedding",
                    pgvector.django.vector.VectorField(dimensions=DIMENSIONS),
                ),
                ("model", models.CharField(max_length=100)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "incident",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="embeddings",
                        to="incidents.incident",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("incident", "model"),
                        name="embedding_one_per_incident_model",
                    )
                ],
            },
        ),
        migrations.RunSQL(
            schema.create_index_sql(DIMENSIONS)
            if schema.indexable(DIMENSIONS)
            else migrations.RunSQL.noop,
            schema.drop_index_sql(),
        ),
    ]
