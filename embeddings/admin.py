"""Read-only views of stored embeddings and of failures to embed, to see
what was embedded when, and why an incident has no embedding yet."""

from django.contrib import admin
from django.http import HttpRequest

from embeddings.models import EmbeddingFailure, IncidentEmbedding
from kuberca.admin import ConsoleModelAdmin


@admin.register(IncidentEmbedding)
class IncidentEmbeddingAdmin(ConsoleModelAdmin):
    list_display = ["incident", "model", "created_at"]
    list_filter = ["model"]
    search_fields = ["incident__incident_id", "incident__title", "incident_summary"]
    list_select_related = ["incident"]
    exclude = ["embedding"]
    readonly_fields = ["incident", "incident_summary", "model", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: IncidentEmbedding | None = None
    ) -> bool:
        return False


@admin.register(EmbeddingFailure)
class EmbeddingFailureAdmin(ConsoleModelAdmin):
    list_display = ["incident", "model", "permanent", "attempts", "updated_at"]
    list_filter = ["model", "permanent"]
    search_fields = ["incident__incident_id", "incident__title", "reason"]
    list_select_related = ["incident"]
    readonly_fields = [
        "incident",
        "model",
        "incident_summary",
        "permanent",
        "attempts",
        "reason",
        "retry_after",
        "updated_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: EmbeddingFailure | None = None
    ) -> bool:
        return False
