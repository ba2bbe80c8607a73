"""Request and response bodies of /api/v1/auth (SPEC §7), camelCase on the wire."""

from rest_framework import serializers


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers instead of turning them into text."""

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class CredentialsSerializer(serializers.Serializer):
    """`{"id", "password"}`; both are trimmed before their lengths are checked."""

    id = StrictCharField(min_length=3, max_length=64, help_text="Login id.")
    password = StrictCharField(
        min_length=8, max_length=128, style={"input_type": "password"}
    )


class TokenSerializer(serializers.Serializer):
    accessToken = serializers.CharField(help_text="JWT for `Authorization: Bearer`.")
    expiresIn = serializers.IntegerField(help_text="Seconds the access token lives.")


class ConfigSerializer(serializers.Serializer):
    allowSignup = serializers.BooleanField()


class MeSerializer(serializers.Serializer):
    userId = serializers.IntegerField()
    loginId = serializers.CharField()


class LogoutSerializer(serializers.Serializer):
    status = serializers.CharField(default="logged_out")


class AuthErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="Machine text, e.g. `unauthorized`.")
    detail = serializers.CharField(required=False, help_text="What was wrong.")
