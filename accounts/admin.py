"""The admin of people, groups and revoked tokens: Django's and simplejwt's,
with the console's check of an action's selection (kuberca.admin.CheckedSelection).
Issued tokens have no actions to check."""

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from rest_framework_simplejwt.token_blacklist.admin import BlacklistedTokenAdmin
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

from kuberca.admin import CheckedSelection


class AccountAdmin(CheckedSelection, UserAdmin):
    pass


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
