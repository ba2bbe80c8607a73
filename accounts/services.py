"""Account rules: sign-up, login, the refresh-token session, the first admin.

Views, the admin and `manage.py ensure_admin` call these. Refresh tokens are
SimpleJWT tokens recorded as outstanding; using one (rotation) or logging out
blacklists it, under a row lock, so a refresh token works exactly once. A
password change ends the sessions started before it.
"""

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import update_last_login
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils.crypto import salted_hmac
from rest_framework import serializers, status
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.token_blacklist.models import (
    BlacklistedToken,
    OutstandingToken,
)
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.authentication import SafeRefreshToken, token_readable, token_user_id
from accounts.serializers import CredentialsSerializer
from accounts.throttling import login_attempt_reserve
from kuberca.env import ConfigError
from kuberca.errors import Conflict, Disabled, DomainError, InvalidInput

logger = logging.getLogger(__name__)


class InvalidRequest(DomainError):
    code = "invalid request"
    default_message = "invalid request"


class Unauthorized(DomainError):
    """Wrong login id or password, or a refresh token that cannot be used.

    One answer for every cause, so a caller cannot tell whether a login id
    exists or why a token was refused.
    """

    code = "unauthorized"
    http_status = status.HTTP_401_UNAUTHORIZED
    default_message = "unauthorized"


class SignupDisabled(Disabled):
    code = "signup disabled"
    default_message = "signup disabled"


class LoginIdTaken(Conflict):
    code = "already exists"
    default_message = "already exists"


@dataclass(frozen=True)
class Session:
    """A fresh access token for the body and a refresh token for the cookie."""

    user_id: int
    access_token: str
    refresh_token: str
    expires_in: int  # seconds the access token lives
    refresh_max_age: int  # seconds the refresh token lives


def user_register(*, login_id: str, password: str, client: str) -> AbstractBaseUser:
    """Create an ordinary user, when ALLOW_SIGNUP is on.

    Raises SignupDisabled, InvalidInput (a login id Django does not accept as
    a username, or a password its validators reject), LoginIdTaken (also for
    a login id differing only in case), or LoginThrottled. Every attempt,
    an account made or not, counts against the client's login budget, so
    that one address cannot make accounts without end. The login id is checked in the
    NFKC form Django stores usernames in ("ＡＢＣ" is stored as "ABC").
    """
    if not settings.ALLOW_SIGNUP:
        raise SignupDisabled()
    User = get_user_model()
    login_attempt_reserve(client=client, login_id=None)

    try:
        login_id = _stored_login_id(login_id)
        validate_password(password, user=User(username=login_id))
    except serializers.ValidationError as error:
        raise InvalidInput(f"id: {' '.join(map(str, error.detail))}") from None
    except ValidationError as error:
        raise InvalidInput(" ".join(error.messages)) from None
    try:
        user, created = _create_unless_taken(
            login_id,
            lambda: User.objects.create_user(username=login_id, password=password),
        )
    except IntegrityError:
        raise LoginIdTaken() from None  # created meanwhile, not by a sign-up
    if not created:
        raise LoginIdTaken()

    logger.info("user registered user_id=%s", user.pk)
    return user


def _stored_login_id(login_id: str) -> str:
    """The login id in the NFKC form Django stores usernames in ("ＡＢＣ" is
    "ABC"), checked in that form against the login body's rules (raises
    serializers.ValidationError) and Django's username characters (raises
    ValidationError)."""
    stored = get_user_model().normalize_username(login_id)
    CredentialsSerializer().fields["id"].run_validation(stored)
    UnicodeUsernameValidator()(stored)
    return stored


def _login_id_problems(login_id: str) -> tuple[str, list[str]]:
    """The login id as stored, and what its checks hold against it (nothing
    when it passes them)."""
    try:
        return _stored_login_id(login_id), []
    except serializers.ValidationError as error:
        return login_id, [str(message) for message in error.detail]
    except ValidationError as error:
        return login_id, error.messages


def login_id_refusal(login_id: str, *, user_id: int | None = None) -> str | None:
    """Why a user could not have `login_id`, or None when it can.

    The API's rules (sign-up's checks on the NFKC form) and one account per
    login id whatever its case; `user_id` is the user being renamed, whose
    own id does not count against it. For forms that create or rename users
    outside the API (the admin), so they take no id the API would refuse.
    Inside a transaction (the admin saves in one) it takes sign-up's lock of
    the id until commit, so a concurrent sign-up, or another form, of the same
    id in any case waits and then sees this one.
    """
    stored, problems = _login_id_problems(login_id)
    if problems:
        return " ".join(problems)
    if connection.in_atomic_block:
        _lock_login_id(stored)
    others = get_user_model().objects.filter(username__iexact=stored)
    if user_id is not None:
        others = others.exclude(pk=user_id)
    if others.exists():
        return "A user with that login id, in some case, already exists."
    return None


def password_refusal(password: str) -> str | None:
    """Why the API login could not take `password`, or None when it can.

    The login body trims the password, then takes 8 to 128 characters: one
    that starts or ends with a space could never be typed in at the API,
    nor one of another length. For forms that set passwords outside the API
    (the admin), so they make no account that cannot sign in to it.
    """
    if password != password.strip():
        return "The login cuts spaces at either end: it must not start or end with one."
    try:
        CredentialsSerializer().fields["password"].run_validation(password)
    except serializers.ValidationError as error:
        return " ".join(str(message) for message in error.detail)
    return None


def _create_unless_taken(
    login_id: str, create: Callable[[], AbstractBaseUser]
) -> tuple[AbstractBaseUser, bool]:
    """`create()` the user of `login_id`, unless one has it in any case: that
    one then, and whether it was created. Raises IntegrityError for an exact
    match created meanwhile by something that took no lock."""
    with transaction.atomic():
        _lock_login_id(login_id)
        taken = get_user_model().objects.filter(username__iexact=login_id).first()
        if taken is not None:
            return taken, False
        return create(), True


# pg advisory lock namespace of sign-ups (two int4 keys).
SIGNUP_LOCK_CLASS = 0x6B73


def _lock_login_id(login_id: str) -> None:
    """Make sign-ups of one login id, in any case, take turns until commit.

    No constraint says that ids differing only in case are one account, so
    two sign-ups of "alice" and "Alice" at once would both pass the check.
    The key is the database's own upper(), the one `iexact` compares.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(upper(%s)))",
            [SIGNUP_LOCK_CLASS, login_id],
        )


def user_login(*, login_id: str, password: str, client: str) -> AbstractBaseUser:
    """Check a login id and password; return the active user.

    Raises Unauthorized (unknown id, wrong password and inactive user alike)
    or LoginThrottled. Only failures use up the throttle budget. The id is
    read NFKC-normalised, the form sign-up stores it in.
    """
    login_id = get_user_model().normalize_username(login_id)
    reservation = login_attempt_reserve(client=client, login_id=login_id)

    # Django's backend hashes the password even for an unknown login id, so
    # the answer takes as long whether or not the id exists.
    user = authenticate(None, username=login_id, password=password)
    if user is None:
        logger.info("login failed client=%s", client)
        raise Unauthorized()

    reservation.release()
    update_last_login(None, user)
    logger.info("login succeeded user_id=%s", user.pk)
    return user


# The refresh token's stamp of the password its user had when the session
# started: a changed password (in the admin, by `changepassword`) then ends
# every session begun with the old one, as it ends Django's own sessions.
STAMP_CLAIM = "pwd"


def _password_stamp(user: AbstractBaseUser) -> str:
    # Keyed by SECRET_KEY: the token's reader learns nothing of the hash.
    return salted_hmac(
        "accounts.refresh-password", user.password, algorithm="sha256"
    ).hexdigest()[:32]


def token_issue(*, user: AbstractBaseUser) -> Session:
    """Start a session for `user`: a new outstanding refresh token."""
    refresh = RefreshToken.for_user(user)
    refresh[STAMP_CLAIM] = _password_stamp(user)
    # for_user recorded the token before it had the stamp.
    OutstandingToken.objects.filter(jti=refresh[jwt_settings.JTI_CLAIM]).update(
        token=str(refresh)
    )
    return _session(user, refresh)


def token_rotate(*, refresh_token: str) -> Session:
    """Exchange a refresh token for a new session and blacklist the old one.

    Raises Unauthorized when the token is malformed, signed with another key,
    expired, not a refresh token, blacklisted, already rotated, names no
    possible user id, its user is gone or inactive, or has changed password
    since. Two concurrent uses of one token: one wins, one is refused.
    """
    old = _decode_refresh(refresh_token)
    user_id = token_user_id(old)
    if user_id is None:
        raise Unauthorized()
    User = get_user_model()

    with transaction.atomic():
        outstanding = (
            OutstandingToken.objects.select_for_update()
            .filter(jti=old[jwt_settings.JTI_CLAIM])
            .first()
        )
        if (
            outstanding is None
            or BlacklistedToken.objects.filter(token=outstanding).exists()
        ):
            raise Unauthorized()
        user = User.objects.filter(**{jwt_settings.USER_ID_FIELD: user_id}).first()
        if user is None or not jwt_settings.USER_AUTHENTICATION_RULE(user):
            raise Unauthorized()
        if old.get(STAMP_CLAIM) != _password_stamp(user):
            raise Unauthorized()
        BlacklistedToken.objects.create(token=outstanding)
        session = token_issue(user=user)
    return session


def token_revoke(*, refresh_token: str) -> bool:
    """Blacklist a refresh token (logout); False when it was not usable anyway."""
    try:
        token = _decode_refresh(refresh_token)
    except Unauthorized:
        return False
    # Under the row lock token_rotate takes: unlocked, a logout's blacklist
    # insert waited for a rotation holding the token while that rotation's
    # own insert waited for the logout's, and PostgreSQL failed one of the
    # two requests as a deadlock.
    with transaction.atomic():
        outstanding = (
            OutstandingToken.objects.select_for_update()
            .filter(jti=token[jwt_settings.JTI_CLAIM])
            .first()
        )
        if outstanding is None:
            return False
        _, created = BlacklistedToken.objects.get_or_create(token=outstanding)
    if created:
        logger.info("refresh token revoked user_id=%s", outstanding.user_id)
    return created


def _decode_refresh(raw: str) -> RefreshToken:
    try:
        # signature, expiry, type and blacklist
        return token_readable(lambda: SafeRefreshToken(raw))
    except (TokenError, InvalidToken):
        raise Unauthorized() from None


def _session(user: AbstractBaseUser, refresh: RefreshToken) -> Session:
    return Session(
        user_id=user.pk,
        access_token=str(refresh.access_token),
        refresh_token=str(refresh),
        expires_in=int(jwt_settings.ACCESS_TOKEN_LIFETIME.total_seconds()),
        refresh_max_age=int(jwt_settings.REFRESH_TOKEN_LIFETIME.total_seconds()),
    )


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
    Raises ConfigError for a login id or password the API would refuse
    (settings refuse one of the two set without the other).
    """
    User = get_user_model()
    username, password = settings.ADMIN_USERNAME, settings.ADMIN_PASSWORD
    if username and password:
        username = _admin_settings_check(username, password)
        username, created = _create_superuser(User, username, password)
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
    # A new database (`make clean-db`) keeps the password already written
    # down, so saved logins and scripts reading the file still work.
    generated = _kept_password(password_file) or secrets.token_urlsafe(12)
    _, created = _create_superuser(User, GENERATED_ADMIN, generated)
    if not created:
        # Taken meanwhile, or by an ordinary user in another case: its
        # password is not the one generated here.
        return None
    password_file.parent.mkdir(parents=True, exist_ok=True)
    password_file.write_text(generated + "\n")
    password_file.chmod(0o600)
    return AdminAccount(GENERATED_ADMIN, created, generated, password_file)


def _kept_password(password_file: Path) -> str | None:
    """The password in an earlier run's file, when login would take it."""
    try:
        kept = password_file.read_text().strip()
        CredentialsSerializer().fields["password"].run_validation(kept)
    except (OSError, UnicodeDecodeError, serializers.ValidationError):
        return None
    return kept


def _admin_settings_check(username: str, password: str) -> str:
    """Refuse an ADMIN_USERNAME or ADMIN_PASSWORD that the API would refuse;
    return the login id as it is stored.

    The lengths are those of the login body; the login id must also be one
    that sign-up takes, which keeps out control characters, in the
    NFKC-normalised form it is stored in, as sign-up checks it. Checked before
    the database, so a bad value stops start-up with one line naming it.
    """
    stored, problems = _login_id_problems(username)
    if problems:
        raise ConfigError(
            "ADMIN_USERNAME",
            username,
            f"a login id the API takes ({' '.join(problems)})",
        )
    try:
        CredentialsSerializer().fields["password"].run_validation(password)
    except serializers.ValidationError as error:
        problems = [str(message) for message in error.detail]
        raise ConfigError(
            "ADMIN_PASSWORD",
            "<hidden>",
            f"a password the API takes ({' '.join(problems)})",
        ) from None
    return stored


def _create_superuser(User: type, username: str, password: str) -> tuple[str, bool]:
    """Create the superuser unless its login id is taken, in any case; the
    account's login id as stored, and whether it was created."""
    try:
        user, created = _create_unless_taken(
            username,
            lambda: User.objects.create_superuser(username=username, password=password),
        )
    except IntegrityError:
        return username, False  # created meanwhile by another process
    if not created:
        if user.username != username:
            logger.warning(
                "admin user not created: login id taken in another case "
                "username=%s existing=%s",
                username,
                user.username,
            )
        return user.username, False
    logger.info("admin user created username=%s", username)
    return username, True
