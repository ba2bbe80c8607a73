from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import (
    BlacklistedToken,
    OutstandingToken,
)

from accounts import services
from accounts.tasks import prune_expired_tokens
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


def test_prune_is_scheduled():
    assert "accounts.tasks.prune_expired_tokens" in settings.PERIODIC_TASKS
