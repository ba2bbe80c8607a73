"""The admin of people, groups and tokens: Django's and simplejwt's, with the
console's check of an action's selection (kuberca.admin.CheckedSelection).
Issued tokens have no actions to check, and their pages never show the token
itself. A user's login id, added or renamed here, follows the API's rules
(accounts.services.login_id_refusal): an id the login body refuses would make
an account nobody can sign in to."""

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.contrib.auth.models import Group, User
from rest_framework_simplejwt.token_blacklist.admin import (
    BlacklistedTokenAdmin,
    OutstandingTokenAdmin,
)
from rest_framework_simplejwt.token_blacklist.models import (
    BlacklistedToken,
    OutstandingToken,
)

from accounts.services import login_id_refusal
from kuberca.admin import CheckedSelection


def _checked_login_id(form: forms.ModelForm) -> str:
    username = form.cleaned_data.get("username") or ""
    if form.instance.pk is not None and username == form.initial.get("username"):
        return username  # kept as it is: an older account stays editable
    refusal = login_id_refusal(username, user_id=form.instance.pk)
    if refusal:
        raise forms.ValidationError(refusal, code="invalid")
    return username


class AccountCreationForm(AdminUserCreationForm):
    def clean_username(self) -> str:
        return _checked_login_id(self)


class AccountChangeForm(UserChangeForm):
    def clean_username(self) -> str:
        return _checked_login_id(self)


class AccountAdmin(CheckedSelection, UserAdmin):
    form = AccountChangeForm
    add_form = AccountCreationForm


class TeamAdmin(CheckedSelection, GroupAdmin):
    pass


class RevokedTokenAdmin(CheckedSelection, BlacklistedTokenAdmin):
    pass


class IssuedTokenAdmin(OutstandingTokenAdmin):
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
