"""Generic signed webhook (convmon's own format; modelled on GitHub/Stripe-style signed webhooks).

Each notification is one POST with `Content-Type: application/json` and the body

    {"version": 1, "notification_id": str, "status": "firing"|"resolved", "dedup_key": str, "count": int,
     "first_ts": RFC 3339 str | null, "alert": Alert.to_dict(), "label_command": str | null}

`notification_id` is the same on every delivery of one notification: delivery is at least once
(a delivery cut short by a crash is repeated after the restart), so a receiver that must not act
twice drops an id it has seen.

and two headers:

    X-Convmon-Timestamp: <unix seconds when this attempt was sent>
    X-Convmon-Signature: v1=<hex HMAC-SHA256 of  timestamp + "." + body bytes,  key = shared secret (UTF-8)>

The timestamp is signed with the body (as Stripe and Slack do), so a captured request cannot be
replayed later: a receiver rejects a signature that does not match, and a timestamp more than
REPLAY_WINDOW_S (5 minutes) from its own clock. How a receiver verifies it, over the raw bytes
received, before any JSON parsing (or call `verify_request` from this module)::

    import hashlib, hmac, time
    ts, raw = request.headers["X-Convmon-Timestamp"], request_body_bytes
    expected = "v1=" + hmac.new(secret.encode(), ts.encode() + b"." + raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers["X-Convmon-Signature"]) \
            or abs(time.time() - int(ts)) > 300:
        reject(401)

A retried delivery is signed again with a new timestamp (same body), so receivers should also
treat (`alert.alert_id`, `status`) as an idempotency key; the signed `alert.ts` tells how old the
event is. Any 2xx is success; 408/425/429/5xx and connection errors are retried, other 4xx are not.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any, Optional

import aiohttp

from convmon.alerting.channels._http import HttpPoster, dumps, rfc3339
from convmon.alerting.model import Notification
from convmon.feedback.oncall import label_command

SIGNATURE_HEADER = "X-Convmon-Signature"
TIMESTAMP_HEADER = "X-Convmon-Timestamp"


REPLAY_WINDOW_S = 300  # a receiver accepts a timestamp at most this far from its clock


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The X-Convmon-Signature header value for `body` sent at `timestamp` (unix seconds)."""
    signed = str(int(timestamp)).encode() + b"." + body
    return "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str, timestamp: "str | int | None", *,
           window_s: float = REPLAY_WINDOW_S, now: Optional[float] = None) -> bool:
    """Receiver side: True when `signature` is ours for this body and timestamp (constant-time
    compare) and the timestamp is within `window_s` of `now` (default: this clock)."""
    try:
        ts = int(str(timestamp))
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - ts) > window_s:
        return False
    return hmac.compare_digest(sign(secret, body, ts), signature or "")


def verify_request(secret: str, body: bytes, headers, **kw) -> bool:
    """`verify` with the two headers read from a request's header mapping."""
    return verify(secret, body, headers.get(SIGNATURE_HEADER, ""), headers.get(TIMESTAMP_HEADER), **kw)


def webhook_payload(n: Notification) -> dict[str, Any]:
    return {
        "version": 1,
        "notification_id": n.notification_id,
        "status": n.status,
        "dedup_key": n.dedup_key,
        "count": n.count,
        "first_ts": rfc3339(n.first_ts) if n.first_ts else None,
        "alert": n.alert.to_dict(),
        "label_command": label_command(n.alert),  # how on-call labels it (chat.feedback); null if it takes none
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
        ts = int(time.time())
        headers = {SIGNATURE_HEADER: sign(self._secret, body, ts), TIMESTAMP_HEADER: str(ts)}
        await self._http.post(body, headers)

    async def close(self) -> None:
        await self._http.close()

    def __repr__(self) -> str:  # never the URL or the secret
        return f"WebhookChannel({self.name!r})"
