"""Embed an incident's summary once the final analysis has stored it."""

from functools import partial
from typing import Any

from django.db import transaction
from django.dispatch import receiver

from embeddings import tasks
from embeddings.providers import get_provider
from incidents import events


@receiver(events.incident_summarized, dispatch_uid="embeddings.embed_summary")
def embed_summary(sender: Any, incident_id: str, **kwargs: Any) -> None:
    if get_provider().name == "none":
        return
    transaction.on_commit(partial(tasks.embed_incident.enqueue, incident_id))
