"""Periodic housekeeping of the refresh-token tables (settings.PERIODIC_TASKS)."""

import logging

from django.utils import timezone
from django_tasks import task
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

logger = logging.getLogger(__name__)


@task()
def prune_expired_tokens() -> int:
    """Delete refresh tokens past their expiry, with their blacklist entries.

    An expired token is refused on its signature's `exp` alone, so its rows
    are no longer needed. Cheap when there is nothing to delete.
    """
    deleted, _ = OutstandingToken.objects.filter(expires_at__lt=timezone.now()).delete()
    if deleted:
        logger.info("expired refresh tokens pruned rows=%s", deleted)
    return deleted
