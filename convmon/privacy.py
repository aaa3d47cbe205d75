"""What of a turn may leave the worker: pseudonymised ids and redacted metadata.

Right after a record is decoded, before anything is scored, stored or published, `Protector`
replaces

- `conversation_id` and `user_ref` with keyed pseudonyms: `ps_` + the first 128 bits of
  HMAC-SHA256(key, id), hex. The same id always gives the same pseudonym under one key, so joins,
  per-conversation state, Kafka keys and alert deduplication work as before; without the key
  nobody can tell which conversation or user a row belongs to, or test a guess.
- every string value in `metadata` with the PII detector's redaction (`[EMAIL]`, `[PHONE]`, …),
  except under the keys listed in `privacy.metadata_raw_keys`, which are stored as sent.

So ClickHouse (`turns`, `alerts`), `chat.scores`, `chat.alerts`, alert summaries, dedup keys and
every channel (Slack, PagerDuty, Alertmanager, webhooks) carry pseudonyms only. To look a
conversation up, compute its pseudonym with the same key: `convmon pseudonym <conversation id>`.

The key is `privacy.pseudonym_key` (CONVMON_PRIVACY__PSEUDONYM_KEY). Without one, a random key is
created once in `<var>/pseudonym.key` (mode 0600): fine for one machine, but workers on other
machines would compute other pseudonyms, so `convmon config check` flags it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path
from typing import Any, Iterable, Optional

from .contract import ChatTurn
from .scoring.pii import scan

log = logging.getLogger(__name__)
PREFIX = "ps_"
KEY_FILE = "pseudonym.key"


def pseudonym(key: bytes, value: str) -> str:
    """The keyed pseudonym of an identifier (stable under one key; contract identifier charset)."""
    return PREFIX + hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def redact_value(value: Any) -> Any:
    """`value` with PII in every string inside it replaced by [TYPE] placeholders."""
    if isinstance(value, str):
        found = scan(value)  # on the normalised text, like the message text (zero-width tricks included)
        return found.redacted if found.types else value
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    return value


def load_key(configured: Optional[str], var: Path) -> bytes:
    """The configured key, or this machine's generated one (created on first use, mode 0600)."""
    if configured:
        return configured.encode("utf-8")
    path = var / KEY_FILE
    if not path.exists():
        var.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        log.warning("no privacy.pseudonym_key set: generated one in %s; set CONVMON_PRIVACY__PSEUDONYM_KEY "
                    "(the same on every worker) before running more than one machine", path)
    return path.read_text().strip().encode("utf-8")


class Protector:
    """ChatTurn → the same turn with pseudonymised ids and redacted metadata (see the module docstring)."""

    def __init__(self, key: bytes, metadata_raw_keys: Iterable[str] = ()):
        self.key = key
        self.raw_keys = frozenset(metadata_raw_keys)

    @classmethod
    def from_settings(cls, settings) -> "Protector":
        p = settings.privacy
        key = p.pseudonym_key.get_secret_value() if p.pseudonym_key else None
        return cls(load_key(key, settings.var), p.metadata_raw_keys)

    def __call__(self, turn: ChatTurn) -> ChatTurn:
        update: dict[str, Any] = {"conversation_id": pseudonym(self.key, turn.conversation_id)}
        if turn.user_ref is not None:
            update["user_ref"] = pseudonym(self.key, turn.user_ref)
        if turn.metadata:
            update["metadata"] = {k: (v if k in self.raw_keys else redact_value(v)) for k, v in turn.metadata.items()}
        return turn.model_copy(update=update)
