"""HTTP plumbing shared by the channels: an aiohttp session, status → DeliveryError, redaction.

Error classification (used by every channel unless it passes its own `ok` statuses):
  * connection errors, timeouts, HTTP 408/425/429 and 5xx → retryable `DeliveryError`
  * any other non-success status (400, 401, 403, 404, 410 …) or an invalid URL → not retryable
A `Retry-After` header (seconds or HTTP date) is carried as `HttpDeliveryError.retry_after`.

Secrets (webhook URLs carry tokens, PagerDuty routing keys, …) are removed from every error
message: the URL, its path and query and any extra secret string are replaced with `***`.
Exceptions are re-raised `from None` so no traceback chains an aiohttp error naming the URL.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Iterable, Mapping, Optional
from urllib.parse import urlsplit

import aiohttp
import yarl

from convmon.alerting.model import DeliveryError

USER_AGENT = "convmon-alerting/1"
MAX_ERROR_BODY = 300


class HttpDeliveryError(DeliveryError):
    """A DeliveryError with the HTTP status (None: no response) and a server-requested delay."""

    def __init__(self, message: str, retryable: bool = True, status: Optional[int] = None,
                 retry_after: Optional[float] = None):
        super().__init__(message, retryable)
        self.status = status
        self.retry_after = retry_after


def is_retryable_status(status: int) -> bool:
    return status in (408, 425, 429) or status >= 500


def rfc3339(ts: Optional[datetime] = None) -> str:
    """UTC RFC 3339 timestamp with milliseconds and `Z` (what PagerDuty and Alertmanager parse)."""
    ts = ts or datetime.now(timezone.utc)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dumps(payload: Any) -> bytes:
    """The exact bytes sent (compact, UTF-8). Non-JSON values in alert details become strings."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _retry_after(headers: Mapping[str, str]) -> Optional[float]:
    raw = headers.get("Retry-After")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


class HttpPoster:
    """POSTs bytes for one channel. Owns its aiohttp session unless one is passed in."""

    def __init__(self, channel: str, url: str, *, timeout_s: float = 10.0, secrets: Iterable[str] = (),
                 session: Optional[aiohttp.ClientSession] = None):
        self.channel = channel
        self.url = url
        self.timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(timeout_s, 5.0))
        self._session = session
        self._own_session = session is None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"channel {channel!r}: the URL must be http(s)://host/… (value not shown)")
        tail = parts.path + (f"?{parts.query}" if parts.query else "")
        # Longest first, so a secret contained in another is not left half-redacted.
        encoded = str(yarl.URL(url))  # aiohttp's errors show the URL as yarl normalises it
        self._secrets = sorted({s for s in (url, encoded, tail if len(tail) > 1 else "", parts.query, *secrets) if s},
                               key=len, reverse=True)

    def redact(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
        return text

    async def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout, headers={"User-Agent": USER_AGENT})
            self._own_session = True
        return self._session

    async def post(self, body: bytes, headers: Optional[Mapping[str, str]] = None,
                   ok: Iterable[int] = range(200, 300)) -> tuple[int, str]:
        """POST `body` (JSON); return (status, body text) or raise HttpDeliveryError."""
        ok = set(ok)
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        session = await self._get_session()
        try:
            async with session.post(self.url, data=body, headers=hdrs, timeout=self.timeout,
                                    allow_redirects=False) as resp:
                text = (await resp.content.read(4096)).decode("utf-8", "replace")
                status = resp.status
                retry_after = _retry_after(resp.headers)
        except TimeoutError:  # asyncio.TimeoutError is TimeoutError since Python 3.11
            raise HttpDeliveryError(f"timed out after {self.timeout.total:g}s", retryable=True) from None
        except aiohttp.InvalidURL:
            raise HttpDeliveryError("invalid URL (value not shown)", retryable=False) from None
        except aiohttp.ClientError as e:
            raise HttpDeliveryError(self.redact(f"{type(e).__name__}: {e}"), retryable=True) from None
        if status in ok:
            return status, text
        snippet = " ".join(text.split())[:MAX_ERROR_BODY]
        raise HttpDeliveryError(self.redact(f"HTTP {status}: {snippet}".rstrip(": ")),
                                retryable=is_retryable_status(status), status=status, retry_after=retry_after)

    async def close(self) -> None:
        if self._own_session and self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
