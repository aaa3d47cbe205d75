"""Generic signed webhook (convmon's own format; modelled on GitHub/Stripe-style signed webhooks).

Each notification is one POST with `Content-Type: application/json` and the body

    {"version": 1, "status": "firing"|"resolved", "dedup_key": str, "count": int,
     "first_ts": RFC 3339 str | null, "alert": Alert.to_dict()}

and two headers:

    X-Convmon-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes, key = shared secret (UTF-8)>
    X-Convmon-Timestamp: <unix seconds when this attempt was sent>

How a receiver verifies it (compute over the raw bytes received, before any JSON parsing)::

    import hashlib, hmac
    raw = request_body_bytes
    expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers["X-Convmon-Signature"]):
        reject(401)

The signature covers the body only; `X-Convmon-Timestamp` is informative and not signed. A
retried delivery resends the identical body (same signature), so receivers should treat
(`alert.alert_id`, `status`) as an idempotency key; the signed `alert.ts` tells how old the event
is. Any 2xx is success; 408/425/429/5xx and connection errors are retried, other 4xx are not.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any, Optional

import aiohttp

from convmon.alerting.channels._http import HttpPoster, dumps, rfc3339
from convmon.alerting.model import Notification

SIGNATURE_HEADER = "X-Convmon-Signature"
TIMESTAMP_HEADER = "X-Convmon-Timestamp"


def sign(secret: str, body: bytes) -> str:
    """The X-Convmon-Signature header value for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str) -> bool:
    """Constant-time check of a received X-Convmon-Signature (for receivers and tests)."""
    return hmac.compare_digest(sign(secret, body), signature or "")


def webhook_payload(n: Notification) -> dict[str, Any]:
    return {
        "version": 1,
        "status": n.status,
        "dedup_key": n.dedup_key,
        "count": n.count,
        "first_ts": rfc3339(n.first_ts) if n.first_ts else None,
        "alert": n.alert.to_dict(),
    }


class WebhookChannel:
    """POSTs signed JSON to any HTTPS endpoint."""

    def __init__(self, name: str, url: str, secret: str, *, timeout_s: float = 10.0,
                 session: Optional[aiohttp.ClientSession] = None):
        if not secret:
            raise ValueError(f"channel {name!r}: the webhook HMAC secret is empty")
        self.name = name
        self._secret = secret
        self._http = HttpPoster(name, url, timeout_s=timeout_s, secrets=[secret], session=session)

    async def deliver(self, notification: Notification) -> None:
        body = dumps(webhook_payload(notification))
        headers = {SIGNATURE_HEADER: sign(self._secret, body), TIMESTAMP_HEADER: str(int(time.time()))}
        await self._http.post(body, headers)

    async def close(self) -> None:
        await self._http.close()

    def __repr__(self) -> str:  # never the URL or the secret
        return f"WebhookChannel({self.name!r})"
