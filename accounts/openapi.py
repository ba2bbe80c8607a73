"""The access-token scheme of the OpenAPI document (drf-spectacular).

drf-spectacular knows simplejwt's JWTAuthentication but not subclasses of it,
so accounts' own class is declared here as the same `jwtAuth` bearer scheme.
AccountsConfig.ready imports this module, which registers the extension.
"""

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme


class JWTScheme(SimpleJWTScheme):
    target_class = "accounts.authentication.JWTAuthentication"
