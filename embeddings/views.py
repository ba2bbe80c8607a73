"""The embeddings API: store an incident's embedding, search for similar ones.

Thin views over embeddings.services; both need the JWT of REST_FRAMEWORK's
defaults. With no provider configured, storing answers 503 and search answers
from full text.
"""

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from embeddings import serializers, services
from kuberca.errors import serializer_errors_text

MAX_QUERY_CHARS = 100_000


def _error(message: str, detail: str = "") -> Response:
    body = {"error": message}
    if detail:
        body["detail"] = detail
    return Response(body, status=400)


def _body(request: Request) -> dict[str, Any]:
    return request.data if isinstance(request.data, dict) else {}


class EmbeddingCreateView(APIView):
    @extend_schema(
        operation_id="embeddings_create",
        tags=["embeddings"],
        summary="Embed a resolved incident's summary for similar-incident search",
        request=serializers.EmbeddingCreateSerializer,
        responses={
            200: serializers.EmbeddingCreatedSerializer,
            400: serializers.ErrorSerializer,
            401: serializers.ErrorSerializer,
            404: serializers.ErrorSerializer,
            502: OpenApiResponse(serializers.ErrorSerializer, "provider refused"),
            503: OpenApiResponse(
                serializers.ErrorSerializer,
                "no provider configured, it is down, or the vector column is of"
                " another size than EMBEDDING_DIMENSIONS",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = _body(request)
        body = serializers.EmbeddingCreateSerializer(data=data)
        given = all(
            isinstance(data.get(key), str) and data[key].strip()
            for key in ("incident_id", "incident_summary")
        )
        if not given:
            return _error("incident_id and incident_summary are required")
        if not body.is_valid():
            return _error("invalid input", serializer_errors_text(body.errors))
        embedding_id, model = services.embedding_store(
            incident_id=body.validated_data["incident_id"],
            incident_summary=body.validated_data["incident_summary"],
        )
        return Response(
            {"status": "success", "embedding_id": embedding_id, "model": model}
        )


class EmbeddingSearchView(APIView):
    @extend_schema(
        operation_id="embeddings_search",
        tags=["embeddings"],
        summary="Incidents most similar to a text, nearest first",
        request=serializers.SearchRequestSerializer,
        responses={
            200: serializers.SearchResponseSerializer,
            400: serializers.ErrorSerializer,
            401: serializers.ErrorSerializer,
        },
    )
    def post(self, request: Request) -> Response:
        data = _body(request)
        query = data.get("query")
        if not isinstance(query, str) or not query.strip():
            return _error("query is required")
        if len(query) > MAX_QUERY_CHARS:
            return _error(
                "invalid input", f"query must be at most {MAX_QUERY_CHARS} characters"
            )
        limit = data.get("limit", services.DEFAULT_LIMIT)
        if limit is None:
            limit = services.DEFAULT_LIMIT
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            return _error("invalid input", "limit must be a whole number from 1")
        return Response(services.embedding_search(query=query, limit=limit))
