"""Failed-login limits per client address and per login id (SPEC §7).

Before a password is checked, the attempt claims one numbered slot of the
current window in each bucket with `cache.add`, which is atomic on the shared
database cache: web processes count together, and concurrent attempts cannot
all pass the check before any of them is counted. A successful login gives its
slots back, so only failed logins use up LOGIN_THROTTLE_PER_LOGIN_ID; sign-ups,
whether they make an account or not, use up LOGIN_THROTTLE_PER_CLIENT with the
failed logins. Windows are fixed (`5/min` is 5 per calendar minute), and an
attempt refused for lack of slots claims none.
"""

import hashlib
import logging
import math
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from accounts.rates import Rate, parse_rate

logger = logging.getLogger(__name__)


class LoginThrottled(Exception):
    """No slot left in a bucket; `retry_after` is when its window ends."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"login throttled, retry after {retry_after}s")


@dataclass
class Reservation:
    """The slots one login attempt holds; give them back if it succeeds."""

    keys: list[str] = field(default_factory=list)

    def release(self) -> None:
        if self.keys:
            cache.delete_many(self.keys)
            self.keys = []


def login_attempt_reserve(
    *, client: str, login_id: str | None, now: float | None = None
) -> Reservation:
    """Claim a slot for one login attempt from `client` for `login_id`.

    Raises LoginThrottled when a bucket is full; then nothing stays claimed.
    `login_id` None (sign-up) counts against the client bucket only. `now` is
    a Unix time, for tests; by default the current time.
    """
    now = timezone.now().timestamp() if now is None else now
    buckets = [("client", client, parse_rate(settings.LOGIN_THROTTLE_PER_CLIENT))]
    if login_id is not None:
        buckets.append(
            (
                "login_id",
                login_id.lower(),
                parse_rate(settings.LOGIN_THROTTLE_PER_LOGIN_ID),
            )
        )

    slots: list[tuple[str, list[str], Rate, float]] = []
    for scope, ident, rate in buckets:
        if rate.count == 0:
            continue
        window = int(now // rate.seconds)
        digest = hashlib.sha256(ident.encode()).hexdigest()[:32]
        keys = [f"login:{scope}:{digest}:{window}:{n}" for n in range(rate.count)]
        slots.append((scope, keys, rate, (window + 1) * rate.seconds - now))
    taken = cache.get_many([key for _, keys, _, _ in slots for key in keys])

    reservation = Reservation()
    for scope, keys, rate, remaining in slots:
        claimed = next(
            (
                key
                for key in keys
                if key not in taken and cache.add(key, 1, timeout=rate.seconds + 1)
            ),
            None,
        )
        if claimed is None:
            reservation.release()
            retry_after = max(1, math.ceil(remaining))
            logger.warning(
                "login throttled scope=%s client=%s retry_after=%s",
                scope,
                client,
                retry_after,
            )
            raise LoginThrottled(retry_after)
        reservation.keys.append(claimed)
    return reservation
