"""Account rules: the first admin user, created from settings or generated."""

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

logger = logging.getLogger(__name__)

GENERATED_ADMIN = "admin"


@dataclass(frozen=True)
class AdminAccount:
    username: str
    created: bool
    password: str | None  # only when kuberca generated it
    password_file: Path | None


def admin_ensure(*, password_file: Path | None = None) -> AdminAccount | None:
    """Create the superuser named by ADMIN_USERNAME/ADMIN_PASSWORD if missing.

    Without those settings and with no superuser at all, create `admin` with a
    generated password kept in `password_file` (development). An existing
    user's password is never changed. Returns None when there is nothing to do.
    """
    User = get_user_model()
    username, password = settings.ADMIN_USERNAME, settings.ADMIN_PASSWORD
    if username and password:
        created = _create_superuser(User, username, password)
        return AdminAccount(username, created, None, None)
    if password_file is None:
        return None
    if (
        password_file.exists()
        and User.objects.filter(username=GENERATED_ADMIN).exists()
    ):
        return AdminAccount(
            GENERATED_ADMIN, False, password_file.read_text().strip(), password_file
        )
    if User.objects.filter(is_superuser=True).exists():
        return None
    generated = secrets.token_urlsafe(12)
    created = _create_superuser(User, GENERATED_ADMIN, generated)
    if created:
        password_file.parent.mkdir(parents=True, exist_ok=True)
        password_file.write_text(generated + "\n")
        password_file.chmod(0o600)
    return AdminAccount(GENERATED_ADMIN, created, generated, password_file)


def _create_superuser(User: type, username: str, password: str) -> bool:
    if User.objects.filter(username=username).exists():
        return False
    try:
        with transaction.atomic():
            User.objects.create_superuser(username=username, password=password)
    except IntegrityError:
        return False  # created meanwhile by another process
    logger.info("admin user created username=%s", username)
    return True
