"""`manage.py ensure_admin`: create the first superuser if it is missing."""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from accounts.services import admin_ensure


class Command(BaseCommand):
    help = (
        "Create the superuser ADMIN_USERNAME/ADMIN_PASSWORD if missing; with "
        "--generate and no superuser, create 'admin' with a generated password."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--generate",
            action="store_true",
            help="Generate the admin password into var/admin_password (development).",
        )

    def handle(self, *args: Any, generate: bool = False, **options: Any) -> None:
        password_file = Path(settings.VAR_DIR) / "admin_password" if generate else None
        account = admin_ensure(password_file=password_file)
        if account is None:
            self.stdout.write("admin: nothing to do")
            return
        verb = "created" if account.created else "exists"
        self.stdout.write(f"admin user {account.username} {verb}")
