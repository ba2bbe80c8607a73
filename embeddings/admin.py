"""Read-only view of stored embeddings, to see what was embedded when."""

from django.contrib import admin
from django.http import HttpRequest

from embeddings.models import IncidentEmbedding


@admin.register(IncidentEmbedding)
class IncidentEmbeddingAdmin(admin.ModelAdmin):
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
