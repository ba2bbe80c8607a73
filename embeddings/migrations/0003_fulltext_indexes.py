"""GIN indexes for the full-text fallback, on the incidents and alerts tables.

They live here, not in those apps, because only similar-incident search uses
them; the expressions come from embeddings.fulltext, where the queries get
theirs, so the planner can match them.
"""

from django.contrib.postgres.indexes import GinIndex
from django.db import migrations

from embeddings import fulltext


def _indexes(apps):  # noqa: ANN001, ANN202
    return [
        (
            apps.get_model("incidents", "Incident"),
            GinIndex(fulltext.incident_vector(), name=fulltext.INCIDENT_INDEX),
        ),
        (
            apps.get_model("alerts", "Alert"),
            GinIndex(fulltext.alert_vector(), name=fulltext.ALERT_INDEX),
        ),
    ]


def create(apps, schema_editor):  # noqa: ANN001, ANN201
    for model, index in _indexes(apps):
        schema_editor.add_index(model, index)


def drop(apps, schema_editor):  # noqa: ANN001, ANN201
    for model, index in _indexes(apps):
        schema_editor.remove_index(model, index)


class Migration(migrations.Migration):
    dependencies = [
        ("embeddings", "0002_incidentembedding"),
        ("incidents", "0001_initial"),
        ("alerts", "0001_initial"),
    ]
    operations = [migrations.RunPython(create, drop)]
