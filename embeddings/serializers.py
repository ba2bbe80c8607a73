"""Request and response shapes of the embeddings API (SPEC §6)."""

from rest_framework import serializers


class EmbeddingCreateSerializer(serializers.Serializer):
    incident_id = serializers.CharField(max_length=32)
    incident_summary = serializers.CharField(max_length=100_000)


class EmbeddingCreatedSerializer(serializers.Serializer):
    status = serializers.CharField()
    embedding_id = serializers.IntegerField()
    model = serializers.CharField()


class SearchRequestSerializer(serializers.Serializer):
    query = serializers.CharField(max_length=100_000)
    limit = serializers.IntegerField(required=False, min_value=1, default=10)


class SearchHitSerializer(serializers.Serializer):
    incident_id = serializers.CharField()
    incident_summary = serializers.CharField()
    similarity = serializers.FloatField()


class SearchResponseSerializer(serializers.Serializer):
    results = SearchHitSerializer(many=True)
    model = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField()
