"""The admin of people, groups and revoked tokens: Django's and simplejwt's,
with the console's check of an action's selection (kuberca.admin.CheckedSelection).
Issued tokens have no actions to check. A user's login id, added or renamed
here, follows the API's rules (accounts.services.login_id_refusal): an id the
login body refuses would make an account nobody can sign in to."""

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.contrib.auth.models import Group, User
from rest_framework_simplejwt.token_blacklist.admin import BlacklistedTokenAdmin
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

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


for model, model_admin in [
    (User, AccountAdmin),
    (Group, TeamAdmin),
    (BlacklistedToken, RevokedTokenAdmin),
]:
    admin.site.unregister(model)
    admin.site.register(model, model_admin)
