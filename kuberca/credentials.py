"""Shared-secret checks of an Authorization header.

The webhook's WEBHOOK_AUTH_TOKEN and the scrape's METRICS_TOKEN are both sent
as `Authorization: Bearer <token>`; the comparison takes the same time
whatever the guess.
"""

import hmac


def bearer_ok(header: str, token: str) -> bool:
    """Whether an Authorization header's value is `Bearer <token>`."""
    scheme, _, credentials = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        credentials.strip().encode(), token.encode()
    )
