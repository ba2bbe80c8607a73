from datetime import timedelta

import pytest
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import (
    BlacklistedToken,
    OutstandingToken,
)

from accounts import services
from accounts.tasks import prune_expired_cache_entries, prune_expired_tokens
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_prune_deletes_only_expired_tokens_and_their_blacklist_rows():
    user = UserFactory()
    old = services.token_issue(user=user)
    services.token_rotate(refresh_token=old.refresh_token)  # blacklists `old`
    OutstandingToken.objects.filter(token=old.refresh_token).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    prune_expired_tokens.call()

    assert OutstandingToken.objects.count() == 1
    assert BlacklistedToken.objects.count() == 0


def test_prune_twice_deletes_once():
    user = UserFactory()
    services.token_issue(user=user)
    OutstandingToken.objects.update(expires_at=timezone.now() - timedelta(days=1))

    assert prune_expired_tokens.call() == 1
    assert prune_expired_tokens.call() == 0


def test_prune_jobs_are_scheduled():
    assert "accounts.tasks.prune_expired_tokens" in settings.PERIODIC_TASKS
    assert "accounts.tasks.prune_expired_cache_entries" in settings.PERIODIC_TASKS


def test_cache_prune_deletes_only_expired_entries(monkeypatch):
    cache.set("gone", 1, timeout=60)
    cache.set("kept", 1, timeout=3600)
    later = timezone.now() + timedelta(minutes=5)
    monkeypatch.setattr(timezone, "now", lambda: later)

    assert prune_expired_cache_entries.call() == 1
    assert prune_expired_cache_entries.call() == 0
    assert cache.get("kept") == 1
