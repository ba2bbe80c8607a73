"""Embedding providers: turn texts into vectors of EMBEDDING_DIMENSIONS floats.

`get_provider()` gives the configured one: `gemini` (google-genai) when
GEMINI_API_KEY (or AI_API_KEY) is set, else `none`, whose callers fall back to
full-text search. The provider retries 429 and 5xx answers and connection
errors itself, with exponential backoff and jitter, then raises
EmbeddingUnavailable (transient) or EmbeddingRejected (permanent).
"""

import functools
import logging
import math
from collections.abc import Sequence
from typing import Protocol

from django.conf import settings
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from rest_framework import status

from embeddings import schema
from kuberca import metrics
from kuberca.deadline import call_within
from kuberca.errors import DomainError

try:  # google-genai sends through httpx2 when it is installed, else httpx
    import httpx2 as _transport
except ImportError:  # pragma: no cover
    import httpx as _transport

logger = logging.getLogger(__name__)

TRANSIENT_STATUSES = (408, 429, 500, 502, 503, 504)
# Gemini's batchEmbedContents takes at most 100 requests per call.
GEMINI_MAX_BATCH = 100
# The largest magnitudes pgvector's float4 `vector` and its `halfvec` (the
# index expression above 2,000 dimensions) hold.
VECTOR_MAX = 3.4028234e38
HALFVEC_MAX = 65504.0
# What a web request (search, POST /api/v1/embeddings) spends on the provider
# at most: three tries of 10 s and the backoff between them stay inside
# gunicorn's 60 s, so a hung Gemini gives full-text results or a 503, not a
# worker killed mid-request. Tasks keep the EMBEDDING_* settings.
REQUEST_ATTEMPTS = 3
REQUEST_TIMEOUT_SECONDS = 10


class ProviderNotConfigured(DomainError):
    code = "embedding provider not configured"
    http_status = status.HTTP_503_SERVICE_UNAVAILABLE
    default_message = "embedding provider not configured (GEMINI_API_KEY)"


class EmbeddingUnavailable(DomainError):
    """The provider failed in a way a later try may not (429, 5xx, network)."""

    code = "embedding provider unavailable"
    http_status = status.HTTP_503_SERVICE_UNAVAILABLE
    default_message = "embedding provider unavailable"


class EmbeddingRejected(DomainError):
    """The provider refused the request; retrying the same call cannot help."""

    code = "embedding provider error"
    http_status = status.HTTP_502_BAD_GATEWAY
    default_message = "embedding provider rejected the request"


class EmbeddingProvider(Protocol):
    name: str
    model: str
    dimensions: int
    max_batch: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Return one vector per text, in order."""
        ...


def usable(vector: Sequence[float], dimensions: int) -> bool:
    """Whether pgvector can store `vector` and compare it by cosine distance.

    NaN and infinities are refused on insert, values past halfvec's range by
    the index expression, and an all-zero vector has no direction: its
    similarity to anything is NaN, which no JSON answer can carry.
    """
    limit = HALFVEC_MAX if schema.uses_halfvec(dimensions) else VECTOR_MAX
    return all(math.isfinite(v) and abs(v) <= limit for v in vector) and any(vector)


class NoProvider:
    """No embedding provider configured: search uses full text instead."""

    name = "none"
    max_batch = GEMINI_MAX_BATCH

    def __init__(self, *, model: str, dimensions: int) -> None:
        self.model = model
        self.dimensions = dimensions

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        raise ProviderNotConfigured()


class GeminiProvider:
    name = "gemini"
    max_batch = GEMINI_MAX_BATCH

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        dimensions: int,
        base_url: str = "",
        timeout_seconds: int = 30,
        retry_attempts: int = 4,
        retry_initial_delay: float = 1.0,
    ) -> None:
        self.model = model
        self.dimensions = dimensions
        self.timeout_seconds = timeout_seconds
        self.retry_attempts = retry_attempts
        max_delay = max(retry_initial_delay, 30.0)
        retry = types.HttpRetryOptions(
            attempts=retry_attempts,
            initial_delay=retry_initial_delay,
            max_delay=max_delay,
            exp_base=2,
            jitter=retry_initial_delay,
            http_status_codes=list(TRANSIENT_STATUSES),
        )
        options = types.HttpOptions(
            base_url=base_url or None,
            timeout=timeout_seconds * 1000,  # milliseconds
            retry_options=retry,
        )
        self._client = genai.Client(api_key=api_key, http_options=options)
        # The most google-genai's tries and the waits between them may take.
        self.deadline_seconds = retry_attempts * timeout_seconds + sum(
            min(retry_initial_delay * (2**n + 1), max_delay)
            for n in range(retry_attempts - 1)
        )

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.max_batch):
            vectors.extend(
                self._embed_batch(list(texts[start : start + self.max_batch]))
            )
        return vectors

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        config = types.EmbedContentConfig(output_dimensionality=self.dimensions)
        try:
            # Bounded in all: an answer trickled in would otherwise hold the
            # task worker (every Slack post and analysis behind it) or a web
            # request.
            response = call_within(
                lambda: self._client.models.embed_content(
                    model=self.model, contents=texts, config=config
                ),
                self.deadline_seconds,
                name="gemini-call",
            )
        except genai_errors.APIError as exc:
            transient = exc.code in TRANSIENT_STATUSES
            metrics.embedding_calls.labels(
                outcome="unavailable" if transient else "rejected"
            ).inc()
            logger.warning(
                "embedding call failed model=%s status=%s texts=%s",
                self.model,
                exc.code,
                len(texts),
            )
            error = EmbeddingUnavailable if transient else EmbeddingRejected
            raise error(f"gemini answered {exc.code}") from exc
        except (
            _transport.RequestError,
            ValueError,
            RecursionError,
            TimeoutError,
        ) as exc:
            # No answer (a transport error), or one google-genai cannot read
            # as Gemini's: a proxy's page, another JSON shape (pydantic's
            # ValidationError is a ValueError), JSON nested too deeply,
            # endless redirects. Either is an outage: search falls back to
            # full text, the task retries.
            what = (
                "unreachable"
                if isinstance(exc, _transport.TransportError | TimeoutError)
                else "answered something unreadable"
            )
            metrics.embedding_calls.labels(outcome="unavailable").inc()
            logger.warning(
                "embedding call failed model=%s gemini %s error=%s",
                self.model,
                what,
                type(exc).__name__,
            )
            raise EmbeddingUnavailable(f"gemini {what}: {type(exc).__name__}") from exc

        embeddings = response.embeddings or []
        vectors = [list(item.values or []) for item in embeddings]
        if len(vectors) != len(texts) or any(
            len(v) != self.dimensions for v in vectors
        ):
            metrics.embedding_calls.labels(outcome="rejected").inc()
            raise EmbeddingRejected(
                f"gemini returned {len(vectors)} vectors for {len(texts)} texts"
                f" or not {self.dimensions} dimensions"
            )
        if not all(usable(v, self.dimensions) for v in vectors):
            metrics.embedding_calls.labels(outcome="rejected").inc()
            logger.warning(
                "embedding call gave an unusable vector model=%s texts=%s",
                self.model,
                len(texts),
            )
            raise EmbeddingRejected(
                "gemini returned an unusable vector (not finite, out of range"
                " or all zeros)"
            )
        metrics.embedding_calls.labels(outcome="ok").inc()
        return vectors


@functools.lru_cache(maxsize=4)
def _build(
    api_key: str,
    base_url: str,
    model: str,
    dimensions: int,
    timeout_seconds: int,
    retry_attempts: int,
    retry_initial_delay: float,
) -> EmbeddingProvider:
    if not api_key:
        return NoProvider(model=model, dimensions=dimensions)
    return GeminiProvider(
        api_key=api_key,
        model=model,
        dimensions=dimensions,
        base_url=base_url,
        timeout_seconds=timeout_seconds,
        retry_attempts=retry_attempts,
        retry_initial_delay=retry_initial_delay,
    )


def get_provider(*, in_request: bool = False) -> EmbeddingProvider:
    """The provider the settings describe (one client per configuration).

    `in_request`: for a web request, whose wait is bounded by REQUEST_ATTEMPTS
    and REQUEST_TIMEOUT_SECONDS.
    """
    timeout = settings.EMBEDDING_TIMEOUT_SECONDS
    attempts = settings.EMBEDDING_RETRY_ATTEMPTS
    if in_request:
        timeout = min(timeout, REQUEST_TIMEOUT_SECONDS)
        attempts = min(attempts, REQUEST_ATTEMPTS)
    return _build(
        settings.GEMINI_API_KEY,
        settings.GEMINI_API_URL,
        settings.EMBEDDING_MODEL,
        settings.EMBEDDING_DIMENSIONS,
        timeout,
        attempts,
        settings.EMBEDDING_RETRY_INITIAL_DELAY,
    )
