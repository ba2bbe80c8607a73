"""Request and response shapes of the embeddings API (SPEC §6)."""

from rest_framework import serializers

# Longer than any stored id (32): an unknown id of a plausible length is
# answered 404 (SPEC §6), an absurd one as a bad body.
INCIDENT_ID_MAX_CHARS = 256


class EmbeddingCreateSerializer(serializers.Serializer):
    incident_id = serializers.CharField(max_length=INCIDENT_ID_MAX_CHARS)
    incident_summary = serializers.CharField(max_length=100_000)


class EmbeddingCreatedSerializer(serializers.Serializer):
    status = serializers.CharField()
    embedding_id = serializers.IntegerField()
    model = serializers.CharField()


class SearchRequestSerializer(serializers.Serializer):
    query = serializers.CharField(max_length=100_000)
    limit = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        default=10,
        help_text="Default 10 (also for null); above 100 counts as 100.",
    )


class SearchHitSerializer(serializers.Serializer):
    incident_id = serializers.CharField()
    incident_summary = serializers.CharField()
    similarity = serializers.FloatField()


class SearchResponseSerializer(serializers.Serializer):
    results = SearchHitSerializer(many=True)
    model = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField()
