"""The admin of people, groups and tokens: Django's and simplejwt's, with the
console's checks of an action's selection and a list's filters
(kuberca.admin.CheckedSelection, CheckedLookups).
Issued and revoked tokens are only shown: revocations are written by logout
and rotation (accounts.services) alone, and the issued tokens' pages never
show the token itself. A user's login id, added or renamed here, and a
password set here follow the API's rules (accounts.services.login_id_refusal,
password_refusal): an id or password the login body refuses would make an
account nobody can sign in to. The admin's login counts failures against
the API login's throttle."""

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.forms import (
    AdminPasswordChangeForm,
    AdminUserCreationForm,
    UserChangeForm,
)
from django.contrib.auth.models import Group, User
from django.http import HttpRequest
from rest_framework_simplejwt.token_blacklist.admin import (
    BlacklistedTokenAdmin,
    OutstandingTokenAdmin,
)
from rest_framework_simplejwt.token_blacklist.models import (
    BlacklistedToken,
    OutstandingToken,
)

from accounts.services import login_id_refusal, password_refusal
from accounts.throttling import LoginThrottled, login_attempt_reserve
from kuberca.addresses import client_address
from kuberca.admin import CheckedLookups, CheckedSelection


def _checked_login_id(form: forms.ModelForm) -> str:
    username = form.cleaned_data.get("username") or ""
    if form.instance.pk is not None and username == form.initial.get("username"):
        return username  # kept as it is: an older account stays editable
    refusal = login_id_refusal(username, user_id=form.instance.pk)
    if refusal:
        raise forms.ValidationError(refusal, code="invalid")
    return username


class ApiPassword:
    """For a form that sets a password (put it first in the bases): one the
    API login takes, unless the form makes it unusable."""

    cleaned_data: dict[str, Any]

    def validate_password_for_user(self, user: User, **kwargs: Any) -> None:
        super().validate_password_for_user(user, **kwargs)  # type: ignore[misc]
        password = self.cleaned_data.get("password1")
        if password and self.cleaned_data.get("set_usable_password", True):
            refusal = password_refusal(password)
            if refusal:
                self.add_error("password1", refusal)  # type: ignore[attr-defined]


class AccountCreationForm(ApiPassword, AdminUserCreationForm):
    def clean_username(self) -> str:
        return _checked_login_id(self)


class AccountPasswordForm(ApiPassword, AdminPasswordChangeForm):
    pass


class AccountChangeForm(UserChangeForm):
    def clean_username(self) -> str:
        return _checked_login_id(self)


class ThrottledLoginForm(AdminAuthenticationForm):
    """The admin's login, limited like the API's (accounts.throttling): the
    same accounts, so the same budget per client and per login id."""

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        if username is None or not self.cleaned_data.get("password"):
            return super().clean()
        try:
            reservation = login_attempt_reserve(
                client=client_address(self.request) or "unknown", login_id=username
            )
        except LoginThrottled as error:
            raise forms.ValidationError(
                "Too many failed logins. Try again in %(seconds)s seconds.",
                code="throttled",
                params={"seconds": error.retry_after},
            ) from None
        cleaned = super().clean()  # raises for a failure, which keeps its slot
        reservation.release()
        return cleaned


class AccountAdmin(CheckedSelection, CheckedLookups, UserAdmin):
    form = AccountChangeForm
    add_form = AccountCreationForm
    change_password_form = AccountPasswordForm


class TeamAdmin(CheckedSelection, CheckedLookups, GroupAdmin):
    pass


class RevokedTokenAdmin(CheckedLookups, BlacklistedTokenAdmin):
    """Read-only: a revocation deleted, or pointed at another token, makes a
    refresh token already used or logged out work again at
    /api/v1/auth/refresh. A session is ended by deactivating its user or
    changing the password."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class IssuedTokenAdmin(CheckedLookups, OutstandingTokenAdmin):
    # simplejwt's page shows every field, the token among them: a refresh
    # token still outstanding, which whoever reads it can exchange at
    # /api/v1/auth/refresh for a session of its user.
    fields = ("jti", "user", "created_at", "expires_at")


for model, model_admin in [
    (User, AccountAdmin),
    (Group, TeamAdmin),
    (BlacklistedToken, RevokedTokenAdmin),
    (OutstandingToken, IssuedTokenAdmin),
]:
    admin.site.unregister(model)
    admin.site.register(model, model_admin)
admin.site.login_form = ThrottledLoginForm
