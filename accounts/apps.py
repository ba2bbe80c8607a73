"""Accounts: login, JWT refresh cookie, signup and the first admin user."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        # Imported for what they register: the checks, the auth scheme.
        from accounts import checks, openapi  # noqa: F401
