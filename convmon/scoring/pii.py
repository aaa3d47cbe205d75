"""PII and secrets: detection and redaction.

Types found:

- email: ``local@domain``, also ``[at]``/``(at)``/``[dot]`` and spelled-out ``name at host dot com``.
- phone: `phonenumbers` (Google libphonenumber): ``PhoneNumberMatcher`` with ``Leniency.VALID``
  over each digit run; numbers without ``+`` are read as US national numbers, or GB ones when they
  start with 0 (the UK trunk prefix). After a phone word ("call", "tel", "my number", …) a run
  is also tried as an IE/AU/IN/DE/FR/ES/IT/NL number and, failing that, accepted when it has a
  possible US/GB length (fictional 07700 900xxx numbers, mistyped ones). Digit runs after
  "order", "invoice", "ISBN", "ticket", … are not phone numbers, nor are bare digit runs
  without a phone word. Plus one hand rule for 7-digit local numbers right after a phone word
  (libphonenumber cannot validate a number without its area code).
- credit_card: 13–19 digits, card-like grouping and prefix, Luhn (`stdnum.luhn`).
- iban: any case, any grouping; `stdnum.iban` (mod-97 and the country's BBAN format).
- ssn: US social security numbers (``123-45-6789``, ``123 45 6789``, or nine bare digits after
  "SSN"/"social security"); `stdnum.us.ssn` (rejects area 000/666/9xx, group 00, serial 0000 and
  the numbers known from advertising, e.g. 078-05-1120).
- ip_address: IPv4 and IPv6 (validated; an IPv4-shaped version number after "version",
  "release", "firmware", "build", "v"… is not an address).
- api_key: well-known key and token shapes (OpenAI/Anthropic, AWS key ids, AWS secret keys next
  to "aws"/"secret", GitHub, Slack tokens and webhook URLs, Google, Stripe, GitLab, Hugging Face,
  JWTs, Azure storage / service-bus connection strings and account keys) and ``api_key=``,
  ``token:``, ``secret=``, ``access_key=`` assignments or "api key is …" statements.
- password: ``password: …``/``pwd=…``/``passwd …`` assignments and prose ("my password is
  hunter2", "the wifi password for the office is …").
- private_key: PEM and PGP private key blocks.

Matching runs on the normalised text (see normalize.py); the redacted copy replaces every
finding with a placeholder such as ``[EMAIL]``. Findings never overlap: detectors run in the
order of `_DETECTORS` and a later one skips spans an earlier one has taken.

Key shapes are hand-written regexes and not `detect-secrets` plugins: measured on this repo's
probe list (bench/pii_probe.py), detect-secrets 1.5's regex plugins alone (no entropy plugins,
no filters) cost ~320 µs on a plain 300-character message, where the whole of `scan` costs
~20 µs, and found 10 of its 30 api_key probes (no OpenAI/Anthropic/Google/Hugging Face shapes,
no unquoted assignments). Emails, passwords and the digit-run candidates are regexes too: no
library finds them in free text (the libraries validate a given string), so the regexes only
find candidates and the libraries above validate them where one exists.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence

import phonenumbers
from phonenumbers import Leniency, PhoneNumberMatcher
from stdnum import iban as _stdnum_iban
from stdnum import luhn as _stdnum_luhn
from stdnum.us import ssn as _stdnum_ssn

from ..contract import ChatTurn
from .base import ScoreFields
from .fields import ScoreField
from .normalize import normalize

PII_TYPES = (
    "private_key", "api_key", "password", "email", "iban", "credit_card", "ssn", "ip_address", "phone",
)


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
    return _stdnum_luhn.is_valid(digits)


def _mod97_ok(compact: str) -> bool:
    # Cheap pre-check (pure arithmetic) before stdnum's full validation; also used to find the
    # IBAN's end when words follow it.
    moved = compact[4:] + compact[:4]
    try:
        return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1
    except ValueError:
        return False


def iban_ok(compact: str) -> bool:
    return 15 <= len(compact) <= 34 and _stdnum_iban.is_valid(compact)


def _digits(s: str) -> str:
    return "".join(c for c in s if c.isdigit())


def _before(text: str, s: int, n: int) -> str:
    return text[max(0, s - n) : s]


# --- patterns (applied to normalised text) ------------------------------------------------

_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
    r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|$)"
)
# Vendor key shapes, each run only when its literal is in the text (one combined regex costs
# ~40 µs on every 300-character turn; a substring test costs well under 1 µs).
_NB = r"(?<![A-Za-z0-9])"
_KEY_SHAPES: list[tuple[tuple[str, ...], re.Pattern]] = [
    (("sk-",), re.compile(_NB + r"sk-(?:proj-|ant-(?:api\d\d-)?|live-)?[A-Za-z0-9_\-]{20,}")),  # OpenAI / Anthropic
    (("AKIA", "ASIA"), re.compile(_NB + r"(?:AKIA|ASIA)[0-9A-Z]{16}")),  # AWS access key id
    (("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
     re.compile(_NB + r"(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})")),  # GitHub
    (("xox",), re.compile(_NB + r"xox[abposr]-[A-Za-z0-9\-]{10,}")),  # Slack token
    (("hooks.slack.com",),  # Slack incoming webhook URL
     re.compile(_NB + r"(?:https?://)?hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_\-]+/[A-Za-z0-9_\-/]{8,}")),
    (("AIza",), re.compile(_NB + r"AIza[0-9A-Za-z_\-]{35}")),  # Google API key
    (("_live_", "_test_"), re.compile(_NB + r"(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}")),  # Stripe
    (("glpat-",), re.compile(_NB + r"glpat-[0-9A-Za-z_\-]{20,}")),  # GitLab
    (("hf_",), re.compile(_NB + r"hf_[A-Za-z0-9]{30,}")),  # Hugging Face
    (("eyJ",), re.compile(_NB + r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}")),  # JWT
    # Azure storage connection string (the whole string), or a bare account / shared access key
    (("DefaultEndpointsProtocol=", "AccountKey=", "SharedAccessKey="),
     re.compile(r"DefaultEndpointsProtocol=[^\s\"']*?(?:AccountKey|SharedAccessSignature)=[^\s\"']+"
                r"|(?:Account|SharedAccess)Key=[A-Za-z0-9+/]{20,}={0,2}")),
]
_KEY_WORDS = re.compile(
    # key=value assignments of secrets: api_key=..., "secret": "...", token: ...
    r"(?i:(?<=[^A-Za-z0-9])|^)(?i:api[_-]?key|secret|token|access[_-]?key)"
    r"[\"']?\s*[:=]\s*[\"']?(?=[^\s\"']*[0-9])[^\s\"']{8,}"
    # the same stated in prose: "my api key is 3f9a…", "auth token 8f3e…" (long, letters and digits)
    r"|(?i:(?<![A-Za-z0-9])(?:api[ _-]?key|token|secret|access[ _-]?key)(?:\s+(?:is|was))?\s*[:=]?\s*[\"']?)"
    r"(?=[A-Za-z0-9_\-./+=]*[0-9])(?=[A-Za-z0-9_\-./+=]*[A-Za-z])[A-Za-z0-9_\-./+=]{16,}"
)
# AWS secret access key stated in prose ("aws secret key is wJalr…"): 40 base64 characters with
# upper, lower and digits, with "aws"/"secret" shortly before it. No vendor prefix to anchor on.
_AWS_SECRET = re.compile(
    r"(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+]*[A-Z])(?=[A-Za-z0-9/+]*[a-z])(?=[A-Za-z0-9/+]*[0-9])"
    r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
)
_AWS_CONTEXT = re.compile(r"(?i)aws|amazon|secret")

# Passwords: hand-written (no library covers prose). Keyword, an optional "for the portal",
# then "is"/"was"/":"/"=" or nothing, then the value.
_PW_SEP = r"\s*(?:\bis\b|\bwas\b|[:=→]|->|=>)\s*[:=]?\s*"
_PASSWORD = re.compile(
    r"(?i)(?<![A-Za-z0-9/\\])(?P<kw>pass(?:word|wd|phrase|code)?s?|pwd|pw)(?![A-Za-z])"
    r"(?P<qual>\s+(?:for|to|on|of|at)(?:\s+[\w@'-]+(?:\.[\w-]+)*){1,3}?)?"
    # after "for the portal" only a real separator; otherwise also a bare space
    rf"[\"']?(?P<sep>(?(qual){_PW_SEP}|(?:{_PW_SEP}|\s+)))"
    # a quoted value may hold spaces ('correct horse battery staple'); else up to the next space
    r"(?:[\"'‘“](?P<qv>[^\"'‘’“”\n]{3,128})[\"'’”]|(?P<v>[^\s\"'‘’“”]{4,128}))"
)
_PW_STOP = frozenset(
    """is was the a an my your his her their our its this that it to for and or of in on at by
    not too very so also still just now always never only being been same different wrong
    incorrect correct invalid valid expired weak strong short long secure insecure saved stored
    encrypted hashed hash required needed missing reset changed updated change update set ok
    okay fine good bad easy hard simple complex visible hidden working protected mandatory
    optional empty blank none null something anything nothing like literally probably case
    manager managers field length policy strength again here there below above please
    sensitive different mismatch mismatched expiry expiration requirements rules""".split()
)
_PW_TEMPLATE = re.compile(r"^(?:[<{$%\[(/~]|\*+$|•+$|x+$|\.+$)", re.IGNORECASE)
_TRAILING_PUNCT = ".,;:?)]}"

# local@domain, also with "[at]"/"(at)" and "[dot]"/"(dot)" obfuscation.
_AT = r"(?:@|\s*[\[\(\{]\s*at\s*[\]\)\}]\s*)"
_DOT = r"(?:\.|\s*[\[\(\{]\s*dot\s*[\]\)\}]\s*)"
_EMAIL = re.compile(
    rf"(?i)(?<![\w.+-])[a-z0-9](?:[a-z0-9._%+-]{{0,63}})?{_AT}[a-z0-9](?:[a-z0-9-]{{0,62}}){_DOT}"
    rf"(?:[a-z0-9-]{{1,63}}{_DOT})*[a-z]{{2,24}}(?![\w-])"
)
# Spelled out: "bob at example dot com", "carla dot mendes at gmail dot com", or "maria.garcia at
# hotmail.com" (a plain " at " needs either a spelled " dot " or an address-like local part).
_AT_SIGN = re.compile(r"@|[\[\(\{]\s*at\s*[\]\)\}]", re.IGNORECASE)
_BRACKET_AT = re.compile(r"[\[\(\{]\s*at\s*[\]\)\}]", re.IGNORECASE)
_SDOT = r"(?:\.|\s+dot\s+)"
_SP_AT = re.compile(r"\s+at\s+", re.IGNORECASE)
_SP_DOMAIN = re.compile(  # right after " at "
    rf"(?i)[a-z0-9][a-z0-9-]{{0,62}}(?:{_SDOT}[a-z0-9][a-z0-9-]{{0,62}}){{0,3}}{_SDOT}(?P<tld>[a-z]{{2,24}})(?![\w@-])"
)
_TOKEN = re.compile(r"\S+")
_SP_LOCAL_WORD = re.compile(r"(?i)[a-z0-9][a-z0-9._%+-]{0,63}")
_SPELLED_TLDS = frozenset(
    "com org net edu gov mil int io co ai app dev info biz me us uk de fr nl es it ch at be se no dk "
    "fi ie pt pl cz ru cn jp kr in au ca nz br mx ar za eu tv cc xyz online site tech email mail".split()
)
_SPELLED_STOP = frozenset(
    "the a an this that my your his her their our its one some any all me you him them us it".split()
)
_IBAN_HINT = re.compile(r"\d\d(?<=[A-Za-z]{2}\d\d)")
_IBAN = re.compile(r"(?i)(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?:[ \-]?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
# 13–19 digits, optionally separated by single spaces, dashes or dots (also one per digit).
# Not glued to letters: digit runs inside hex strings ("…2053514c…") are not cards.
_CARD = re.compile(r"\d(?<![0-9A-Za-z.\-]\d)(?:[ \-.]?\d){12,18}(?![0-9A-Za-z])")
# (Patterns below start with a character class and check what precedes it with a lookbehind
# after it: re can then skip ahead to candidate characters, ~3x faster than a leading lookbehind.)
_SSN = re.compile(r"\d(?<![\d\-]\d)(?:\d{2}([- ])\d{2}\1\d{4}|\d{8})(?![\d\-])")
_SSN_CONTEXT = re.compile(
    r"(?i)(?:\bssn|\bss\s*(?:#|no\b|num|number)|\bsocial(?:\s+security)?(?:\s+(?:no|num|number|#))?|\btax\s*id)"
    r"\W{0,6}(?:\w+\W{1,4}){0,3}$"
)
_IPV4 = re.compile(r"\d(?<![\d.]\d)\d{0,2}\.(?:\d{1,3}\.){2}\d{1,3}(?![\d.]?\d)")
_IPV6 = re.compile(r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Fa-f:])")
_VERSION_CONTEXT = re.compile(
    r"(?i)(?:\b(?:v|ver|version|versions|release|rel|firmware|fw|build|patch|update|upgrade|upgraded|"
    r"bump|bumped|sdk|driver|kernel|os)\W{0,3}|[A-Za-z][-_]?)$"  # also "v1.2.3.4", "python-3.4.2.4"
)
# Phone candidates for libphonenumber: a run of digits and separators with >= 7 digits.
# One separator at most between digits (")", one of " -./", "(" — or " - "), so that "… 0132. (0)"
# or "2024, 10 20" do not join into one candidate.
_PHONE_CANDIDATE = re.compile(r"(?<![\w+/])(?:\+ ?|\(\+?)?\d(?:(?:\)?[ \-./]?\(?|\s-\s)\d){6,60}\)?")
_PHONE_ID_WORDS = re.compile(
    r"(?i)\b(?:order|invoice|inv|ticket|ref|reference|tracking|isbn|issn|ean|upc|sku|po|claim|"
    r"rma|confirmation|transaction|txn|customer|account|acct|serial|part|model|id|version|build|"
    r"lot|batch|shipment|parcel|booking|receipt)\b"
)
_PHONE_WORDS = re.compile(
    r"(?i)\b(?:call|calls|called|calling|phone|phones|cell|cellphone|mobile|tel|telephone|text|txt|"
    r"sms|whatsapp|signal|fax|ring|dial|reach|contact|hotline|landline|ph)\b|"
    r"\b(?:my|your|his|her|our|their|home|work|office)\s+(?:phone\s+)?(?:number|no\b|#)"
)
# After a phone word ("call", "tel", "my number"), when the matcher found no valid US/GB number:
_FALLBACK_TRIES = tuple((r, Leniency.VALID) for r in ("IE", "AU", "IN", "DE", "FR", "ES", "IT", "NL")) + (
    ("US", Leniency.POSSIBLE), ("GB", Leniency.POSSIBLE))
# libphonenumber costs 0.1–0.7 ms a candidate: at most this many candidates a turn go to it (a
# pasted table of numbers stays cheap; numbers after the first 32 candidates are not looked at).
_PHONE_MAX_CANDIDATES = 32
# Dates (2024-05-01 10…, 30.6.2024, 31/12/1999), decimals (0.30000004) and year ranges (2019-2023).
_NOT_A_PHONE = re.compile(
    r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}(?!\d)|\d{1,2}[-/.]\d{1,2}[-/.](?:\d{4}|\d{2})(?!\d)|\d+\.\d+$|\d{4}-\d{4}$"
)
_ONE_DIGIT_GROUP = re.compile(r"(?<!\d)\d(?!\d)")
# Hand rule: 7-digit local number ("555-0132") right after a phone word; libphonenumber cannot
# validate a number without its area code.
_PHONE_LOCAL_SHAPE = re.compile(r"\d{3}[-. ]\d{4}")
_PHONE_LOCAL = re.compile(
    r"(?i)\b(?:phone|cell|mobile|tel|call|text|txt|fax|ring)\b[^\d\n]{0,12}?(?<![\d\-])(\d{3}[-. ]\d{4})(?![\d\-])"
)


def _card_ok(m: str) -> bool:
    d = _digits(m)
    n = len(d)
    if not (13 <= n <= 19) or d[0] not in "2345689" or len(set(d)) == 1:
        return False
    if n == 13 and d[0] != "4":  # only old Visa numbers have 13 digits; 978…/979… is an ISBN/EAN
        return False
    seps = {c for c in m if not c.isdigit()}
    if seps:
        groups = re.split(r"[ \-.]", m)
        # cards are written in groups (4-4-4-4, 4-6-5, one digit each): a single separator,
        # at least 3 groups, none longer than 6 — not "2.718281828459045"
        if len(seps) > 1 or len(groups) < 3 or max(len(g) for g in groups) > 6:
            return False
    return luhn_ok(d)


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


Span = tuple[int, int]


def _regex(pattern: re.Pattern, check: Optional[Callable[[str], bool]] = None) -> Callable[[str], Iterable[Span]]:
    def spans(text: str) -> Iterable[Span]:
        for m in pattern.finditer(text):
            s, e = m.span()
            if check is not None:  # number-like matches: drop trailing separators, then validate
                value = m.group(0).rstrip(" -.")
                e = s + len(value)
                if not check(value):
                    continue
            yield s, e

    return spans


def _ipv4_spans(text: str) -> Iterable[Span]:
    for m in _IPV4.finditer(text):
        if _ipv4_ok(m.group(0)) and not _VERSION_CONTEXT.search(_before(text, m.start(), 24)):
            yield m.span()


def _iban_spans(text: str) -> Iterable[Span]:
    # Jump to "two letters, two digits" (re skips ahead to digits) before trying the full pattern.
    end = 0
    for hint in _IBAN_HINT.finditer(text):
        if hint.start() - 2 < end:
            continue
        m = _IBAN.match(text, hint.start() - 2)
        if m is None:
            continue
        end = m.end()
        raw = m.group(0)
        pos = [i for i, c in enumerate(raw) if c.isalnum()]  # index in raw of each compact char
        compact = "".join(raw[i] for i in pos).upper()
        # Words may follow the IBAN ("… 0130 00 please"): take the longest valid prefix.
        for n in range(min(34, len(compact)), 14, -1):
            if _mod97_ok(compact[:n]) and iban_ok(compact[:n]):
                yield m.start(), m.start() + pos[n - 1] + 1
                break


def _ssn_spans(text: str) -> Iterable[Span]:
    for m in _SSN.finditer(text):
        d = _digits(m.group(0))
        if m.group(1) is None and not _SSN_CONTEXT.search(_before(text, m.start(), 40)):
            continue  # nine bare digits are an SSN only right after "SSN", "social security", …
        if _stdnum_ssn.is_valid(d):
            yield m.span()


def _email_spans(text: str) -> Iterable[Span]:
    # Run the pattern only near each "@" / "[at]": a local part is at most 64 characters before it.
    end = 0
    for at in _AT_SIGN.finditer(text):
        if at.start() < end:
            continue
        m = _EMAIL.search(text, max(end, at.start() - 70), min(len(text), at.end() + 260))
        if m is not None and m.start() <= at.start():
            end = m.end()
            yield m.span()


def _spelled_local(text: str, end: int) -> Optional[tuple[int, str]]:
    """Start and text of the local part ending at `end`: "bob", "carla dot mendes", "j.smith"."""
    toks = list(_TOKEN.finditer(text, max(0, end - 160), end))[-7:]
    if not toks:
        return None
    words: list[str] = []
    start = -1
    i = len(toks) - 1
    while i >= 0 and len(words) < 7:
        tok = toks[i].group()
        lead = len(tok) - len(tok.lstrip("([{<\"'"))
        if not _SP_LOCAL_WORD.fullmatch(tok, lead):
            break
        words.insert(0, tok[lead:])
        start = toks[i].start() + lead
        if lead or i < 2 or toks[i - 1].group().lower() != "dot":
            break
        words.insert(0, "dot")
        i -= 2
    if not words or words[0] == "dot":
        return None
    return start, " ".join(words)


def _email_spelled_spans(text: str) -> Iterable[Span]:
    # Only where a domain follows " at " is the local part looked for.
    for at in _SP_AT.finditer(text):
        dm = _SP_DOMAIN.match(text, at.end())
        if dm is None:
            continue
        domain = dm.group(0).lower()
        if dm.group("tld").lower() not in _SPELLED_TLDS or re.split(r"\.|\s+dot\s+", domain)[0] in _SPELLED_STOP:
            continue  # "back at the dot com bubble"
        found = _spelled_local(text, at.start())
        if found is None:
            continue
        start, local = found
        local = local.lower()
        spelled_dot = " dot " in f" {local} " or re.search(r"\sdot\s", domain) is not None
        if not spelled_dot and not re.search(r"[._+%0-9]", local):
            continue  # "look at google.com"
        if local.split()[0] in _SPELLED_STOP:
            continue
        yield start, dm.end()


def _key_shape_spans(text: str) -> Iterable[Span]:
    for literals, pattern in _KEY_SHAPES:
        if any(lit in text for lit in literals):
            for m in pattern.finditer(text):
                yield m.span()


def _aws_secret_spans(text: str) -> Iterable[Span]:
    for m in _AWS_SECRET.finditer(text):
        if _AWS_CONTEXT.search(_before(text, m.start(), 60)):
            yield m.span()


def _password_spans(text: str) -> Iterable[Span]:
    for m in _PASSWORD.finditer(text):
        kw, sep = m.group("kw").lower(), m.group("sep").strip()
        if m.group("qv") is not None:  # quoted: the quotes say it is a value, take it as it is
            if not _PW_TEMPLATE.match(m.group("qv")) and (sep or kw not in ("pass", "passes")):
                yield m.start(), m.end("qv")
            continue
        v = m.group("v")
        core = v.rstrip(_TRAILING_PUNCT)  # sentence punctuation; a final "!" may be the password's
        word = core.rstrip("!")
        if len(word) < 4 or word.lower() in _PW_STOP or _PW_TEMPLATE.match(word):
            continue
        has_digit_or_symbol = any(c.isdigit() for c in word) or re.search(r"[^\w]", word) is not None
        if kw in ("pass", "passes") and sep not in (":", "=") and not (sep and has_digit_or_symbol):
            continue  # "free pass to …", "the pass was denied"; "pass: x", "my netflix pass is sunshine88"
        if not sep and not has_digit_or_symbol:
            continue  # bare "passwd s3cr3t": only values that look like a password
        yield m.start(), m.start("v") + len(core)


def _parsed_ok(cand: str, region: str, leniency: Leniency) -> bool:
    try:
        n = phonenumbers.parse(cand, region)
    except phonenumbers.NumberParseException:
        return False
    if leniency is Leniency.VALID:
        return phonenumbers.is_valid_number(n)
    return phonenumbers.is_possible_number(n) and len(str(n.national_number)) >= 8


def _split_run(text: str, s: int, e: int, region: str) -> Iterable[Span]:
    """Valid numbers inside a long digit run that is several numbers written one after another."""
    groups = [(g.start(), g.end()) for g in re.finditer(r"[^ ]+", text[s:e])][:24]
    i = 0
    while i < len(groups):
        for j in range(min(len(groups), i + 6), i, -1):
            a, b = s + groups[i][0], s + groups[j - 1][1]
            if 7 <= len(_digits(text[a:b])) <= 15 and _parsed_ok(text[a:b], region, Leniency.VALID):
                yield a, b
                i = j
                break
        else:
            i += 1


def _phone_spans(text: str, taken: Sequence["Finding"] = ()) -> Iterable[Span]:
    budget = _PHONE_MAX_CANDIDATES
    for m in _PHONE_CANDIDATE.finditer(text):
        cand = m.group(0)
        s, e = m.span()
        n_digits = len(_digits(cand))
        if n_digits < 7 or _NOT_A_PHONE.match(cand) or len(_ONE_DIGIT_GROUP.findall(cand.lstrip("+"))) >= 2:
            continue  # too short, a date, decimal or year range, ISBN 0-7432-7356-7, "1 2 3 4 5 6 7"
        if any(s < f.end and f.start < e for f in taken):
            continue  # already a card, IBAN, SSN, IP address
        window = _before(text, s, 60)
        last_id = max((w.end() for w in _PHONE_ID_WORDS.finditer(window)), default=-1)
        last_ph = max((w.end() for w in _PHONE_WORDS.finditer(window)), default=-1)
        if last_id > last_ph:
            continue  # "order 4018-2239-1187", "ISBN 0-306-40615-2"
        if last_ph < 0 and (cand.isdigit() or n_digits > 17):
            continue  # a bare digit run or a long run of numbers: only after "call", "cell", "my number", …
        budget -= 1
        if budget < 0:
            break
        # libphonenumber's matcher (Leniency.VALID), as US or GB national numbers (GB after a
        # leading 0, the UK trunk prefix; "+…" numbers carry their country). A few characters
        # either side let it see "2024-05-01 10[:30]" is a timestamp and take an extension ("x23").
        # (A national number starting with 0 is not a US one, one without it not a GB one.)
        if not cand.lstrip("(").startswith("0"):
            regions: tuple[str, ...] = ("US",)
        else:  # GB; "011 …" is a US international call
            regions = ("GB", "US") if cand.startswith("011") else ("GB",)
        w0, w1 = max(0, s - 2), min(len(text), e + 12)
        found: list[Span] = []
        for region in regions:
            found = [
                (w0 + pm.start, w0 + pm.end)
                for pm in PhoneNumberMatcher(text[w0:w1], region, leniency=Leniency.VALID)
                if w0 + pm.start >= s - 1
            ]
            if found:
                break
        if not found and n_digits > 15:
            found = list(_split_run(text, s, e, regions[0]))  # "415 555 0132 415 555 0199"
        if not found and last_ph >= 0:
            # After a phone word ("call us on 085 2455043", "phone is +44 7700 900123"): valid
            # numbers of a few more regions, then any number of a possible length for US/GB
            # (unallocated, fictional or mistyped numbers are still someone's number being shared).
            # parse() on the candidate alone: cheaper than another matcher pass per region.
            body = cand.rstrip(")") if cand.count("(") < cand.count(")") else cand
            for region, leniency in _FALLBACK_TRIES:
                if _parsed_ok(body, region, leniency):
                    found = [(s, s + len(body))]
                    break
        yield from found
    if _PHONE_LOCAL_SHAPE.search(text):
        for m in _PHONE_LOCAL.finditer(text):
            yield m.span(1)


_Detector = tuple[str, Callable[..., Iterable[Span]], Optional[Callable[[str, str], bool]]]
_KEY_GATE_WORDS = ("key", "secret", "token")

# Cheap gates (text, lower-cased text): skip a detector when its necessary characters are absent.
_DETECTORS: list[_Detector] = [
    ("private_key", _regex(_PRIVATE_KEY), lambda t, lo: "PRIVATE KEY" in t),
    ("api_key", _key_shape_spans, None),
    ("api_key", _regex(_KEY_WORDS), lambda t, lo: any(w in lo for w in _KEY_GATE_WORDS)),
    ("api_key", _aws_secret_spans, lambda t, lo: len(t) >= 40 and ("secret" in lo or "aws" in lo or "amazon" in lo)),
    ("password", _password_spans, lambda t, lo: "pw" in lo or "pass" in lo),
    ("email", _email_spans, lambda t, lo: "@" in t or _BRACKET_AT.search(t) is not None),
    ("email", _email_spelled_spans, lambda t, lo: " at " in lo),
    ("iban", _iban_spans, None),
    ("credit_card", _regex(_CARD, _card_ok), None),
    ("ssn", _ssn_spans, None),
    ("ip_address", _ipv4_spans, lambda t, lo: "." in t),
    ("ip_address", _regex(_IPV6, _ipv6_ok), lambda t, lo: t.count(":") >= 2),
    ("phone", _phone_spans, None),  # last: skips what the others took before calling libphonenumber
]
_NEEDS_DIGITS = frozenset({"credit_card", "phone", "ip_address", "iban", "ssn"})
_DIGIT = re.compile(r"\d")


def find(text: str) -> list[Finding]:
    """Non-overlapping findings in normalised `text`, earlier detectors taking precedence."""
    taken: list[Finding] = []
    has_digit = _DIGIT.search(text) is not None
    lower = text.lower()
    for kind, spans, gate in _DETECTORS:
        if kind in _NEEDS_DIGITS and not has_digit:
            continue
        if gate is not None and not gate(text, lower):
            continue
        for s, e in spans(text, taken) if kind == "phone" else spans(text):
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
    version = "pii-2"
    FIELDS = (
        ScoreField("pii", {"type": "array", "items": {"enum": list(PII_TYPES)}}, [], "Array(LowCardinality(String))",
                   description="types of PII and secrets found", hit=True),
        ScoreField("pii_count", {"type": "integer", "minimum": 0}, 0, "UInt16"),
        ScoreField("text_redacted", {"type": "string"}, "", "String",
                   description="NFKC-normalised text with every PII/secret finding replaced by [TYPE]"),
        ScoreField("text_raw", {"type": "string"}, None, "Nullable(String)", required=False,
                   description="present only when privacy.store_raw_text is enabled"),
    )

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
