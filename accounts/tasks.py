"""Periodic housekeeping of refresh tokens and the shared cache.

Both jobs are listed in settings.PERIODIC_TASKS and are cheap when there is
nothing to delete.
"""

import logging

from django.conf import settings
from django.db import connection
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


@task()
def prune_expired_cache_entries() -> int:
    """Delete expired rows of the database cache (login-throttle slots).

    DatabaseCache removes expired rows only when it is full or a key is read
    again, and throttle keys are never read after their window.
    """
    config = settings.CACHES["default"]
    if config["BACKEND"] != "django.core.cache.backends.db.DatabaseCache":
        return 0
    table = connection.ops.quote_name(config["LOCATION"])
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {table} WHERE expires < %s",  # noqa: S608 (table from settings)
            [timezone.now()],
        )
        deleted = cursor.rowcount
    if deleted:
        logger.info("expired cache entries pruned rows=%s", deleted)
    return deleted
