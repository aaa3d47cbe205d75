"""PII and secrets: detection and redaction.

Types found: email, phone, credit_card (Luhn-checked), iban (ISO 13616 mod-97 checked),
ip_address (v4 and v6, validated), api_key (well-known key and token shapes), private_key
(PEM blocks). Matching runs on the normalised text (see normalize.py); the redacted copy
replaces every finding with a placeholder such as ``[EMAIL]``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from ..contract import ChatTurn
from .base import ScoreFields
from .normalize import normalize

PII_TYPES = ("private_key", "api_key", "email", "iban", "credit_card", "ip_address", "phone")


@dataclass(frozen=True, slots=True)
class Finding:
    type: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class PiiResult:
    types: list[str]  # sorted, unique
    count: int
    redacted: str


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(compact: str) -> bool:
    if not (15 <= len(compact) <= 34):
        return False
    moved = compact[4:] + compact[:4]
    try:
        return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1
    except ValueError:
        return False


def _digits(s: str) -> str:
    return "".join(c for c in s if c.isdigit())


# --- patterns (applied to normalised text) ------------------------------------------------

_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|$)"
)
_API_KEY = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    r"sk-(?:proj-|ant-(?:api\d\d-)?|live-)?[A-Za-z0-9_\-]{20,}"  # OpenAI / Anthropic style
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}"  # GitHub
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}"  # Slack
    r"|AIza[0-9A-Za-z_\-]{35}"  # Google API key
    r"|(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}"  # Stripe
    r"|glpat-[0-9A-Za-z_\-]{20,}"  # GitLab
    r"|hf_[A-Za-z0-9]{30,}"  # Hugging Face
    r"|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"  # JWT
    r")"
    # key=value assignments of secrets: api_key=..., "password": "...", token: ...
    r"|(?i:(?<=[^A-Za-z0-9])|^)(?i:api[_-]?key|secret|token|passw(?:or)?d|access[_-]?key)"
    r"[\"']?\s*[:=]\s*[\"']?(?=[^\s\"']*[0-9])[^\s\"']{8,}"
)
# local@domain, also with "[at]"/"(at)" and "[dot]"/"(dot)" obfuscation.
_AT = r"(?:@|\s*[\[\(\{]\s*at\s*[\]\)\}]\s*)"
_DOT = r"(?:\.|\s*[\[\(\{]\s*dot\s*[\]\)\}]\s*)"
_EMAIL = re.compile(
    rf"(?i)(?<![\w.+-])[a-z0-9](?:[a-z0-9._%+-]{{0,63}})?{_AT}[a-z0-9](?:[a-z0-9-]{{0,62}}){_DOT}"
    rf"(?:[a-z0-9-]{{1,63}}{_DOT})*[a-z]{{2,24}}(?![\w-])"
)
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?:[ \-]?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
# 13–19 digits, optionally separated by single spaces, dashes or dots (also one per digit).
_CARD = re.compile(r"(?<![\d.\-])\d(?:[ \-.]?\d){12,18}(?![\d])")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.]?\d)")
_IPV6 = re.compile(r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Fa-f:])")
# +CC or (area) or plain separated groups; validated by digit count below.
_PHONE = re.compile(r"(?<![\w+])(?:\+|00)?(?:\(?\d{1,4}\)?[ \-.]?){2,6}\d{2,4}(?!\w)")


def _card_ok(m: str) -> bool:
    d = _digits(m)
    return 13 <= len(d) <= 19 and d[0] in "2345689" and luhn_ok(d) and len(set(d)) > 1


def _iban_ok(m: str) -> bool:
    return iban_ok(m.replace(" ", "").replace("-", ""))


def _ipv4_ok(m: str) -> bool:
    parts = m.split(".")
    return all(p == "0" or (not p.startswith("0") and int(p) <= 255) for p in parts)


def _ipv6_ok(m: str) -> bool:
    if m.count(":") < 2 or len(m.replace(":", "")) < 4:
        return False
    try:
        ipaddress.IPv6Address(m)
        return True
    except ValueError:
        return False


def _phone_ok(m: str) -> bool:
    d = _digits(m)
    stripped = m.strip()
    international = stripped.startswith("+") or stripped.startswith("00")
    separated = bool(re.search(r"[ \-.()]", stripped))
    if international:
        return 8 <= len(d) <= 15
    # Bare digit runs are too often order numbers or amounts; need national-format separators.
    return separated and 9 <= len(d) <= 12 and not re.fullmatch(r"\d{1,4}[.\-/]\d{1,2}[.\-/]\d{1,4}", stripped)


_DETECTORS: list[tuple[str, re.Pattern, Optional[Callable[[str], bool]]]] = [
    ("private_key", _PRIVATE_KEY, None),
    ("api_key", _API_KEY, None),
    ("email", _EMAIL, None),
    ("iban", _IBAN, _iban_ok),
    ("credit_card", _CARD, _card_ok),
    ("ip_address", _IPV4, _ipv4_ok),
    ("ip_address", _IPV6, _ipv6_ok),
    ("phone", _PHONE, _phone_ok),
]

# Cheap gates: skip a detector's regex entirely when its necessary characters are absent.
_GATES = {
    "private_key": lambda t: "PRIVATE KEY" in t,
    "email": lambda t: "@" in t or "at" in t.lower(),
    "iban": lambda t: any(c.isupper() for c in t),
    "ip_address": lambda t: "." in t or ":" in t,
}


def find(text: str) -> list[Finding]:
    """Non-overlapping findings in normalised `text`, earlier detectors taking precedence."""
    taken: list[Finding] = []
    has_digit = any(c.isdigit() for c in text)
    for kind, pattern, check in _DETECTORS:
        if kind in ("credit_card", "phone", "ip_address", "iban") and not has_digit:
            continue
        gate = _GATES.get(kind)
        if gate is not None and not gate(text):
            continue
        for m in pattern.finditer(text):
            s, e = m.span()
            if check is not None:  # number-like matches: drop trailing separators, then validate
                value = m.group(0).rstrip(" -.")
                e = s + len(value)
                if not check(value):
                    continue
            if any(s < f.end and f.start < e for f in taken):
                continue
            taken.append(Finding(kind, s, e))
    taken.sort(key=lambda f: f.start)
    return taken


def redact(text: str, findings: Sequence[Finding]) -> str:
    out, pos = [], 0
    for f in findings:
        out.append(text[pos : f.start])
        out.append(f"[{f.type.upper()}]")
        pos = f.end
    out.append(text[pos:])
    return "".join(out)


def scan(text: str) -> PiiResult:
    norm = normalize(text)
    findings = find(norm)
    return PiiResult(sorted({f.type for f in findings}), len(findings), redact(norm, findings) if findings else norm)


class PiiScorer:
    """Scorer: PII/secret types, their count, and the redacted text (raw text only on opt-in)."""

    name = "pii"
    version = "pii-1"

    def __init__(self, store_raw_text: bool = False):
        self.store_raw_text = store_raw_text

    def score(self, turns: Sequence[ChatTurn]) -> list[ScoreFields]:
        out = []
        for t in turns:
            r = scan(t.text)
            out.append(
                {
                    "pii": r.types,
                    "pii_count": r.count,
                    "text_redacted": r.redacted,
                    "text_raw": t.text if self.store_raw_text else None,
                }
            )
        return out
