"""Fixtures of the embeddings tests: the fake Gemini, or no provider at all."""

import pytest

from embeddings.tests.fake_gemini import FakeGemini


@pytest.fixture
def fake_gemini(local_server, settings):  # noqa: ANN001, ANN201
    """Configure the gemini provider against a local FakeGemini."""
    gemini = FakeGemini(local_server)
    settings.GEMINI_API_KEY = "test-key"
    settings.GEMINI_API_URL = gemini.url
    settings.EMBEDDING_RETRY_INITIAL_DELAY = 0.01
    settings.EMBEDDING_RETRY_ATTEMPTS = 3
    return gemini


@pytest.fixture
def no_provider(settings):  # noqa: ANN001, ANN201
    settings.GEMINI_API_KEY = ""
    settings.GEMINI_API_URL = ""


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):  # noqa: ANN001, ANN201
    # The `user` fixture's Argon2 hash costs most of a second per test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
