"""Which language a turn is in, and whether the model suite may judge it.

The suite is trained and evaluated on English only; on other languages its scores are guesses (a
Japanese request to change a booking scored jailbreak 0.95). A turn in a language the suite does not
know keeps its scores but gets no decision: no hit, no page, counted as `unsupported_language_turns`.

Detection is py3langid (a maintained fork of langid.py, BSD-3-Clause; its model ships in the package).
Short chat ("ok", "lol", "u r an idiot") is where any detector guesses, and a wrong "not English" would
silently drop a real insult, so a turn counts as unsupported only when the detector is sure
(probability ≥ MIN_PROBABILITY) AND there is enough text to be sure of: at least MIN_WORDS words, or a
script English is not written in (Japanese, Chinese, Korean, Cyrillic, …) for most of its letters.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

MIN_PROBABILITY = 0.5
MIN_WORDS = 3
NO_LANGUAGE = "zxx"  # py3langid's "no linguistic content" (numbers, symbols): nothing the suite cannot judge
DETECT_CHARS = 2000  # the opening is enough to tell the language, and keeps long turns cheap


@dataclass(frozen=True, slots=True)
class Language:
    code: str  # ISO 639-1 as py3langid names it ("en", "ja", …); "" when too short or unclear to tell
    probability: float
    supported: bool  # the suite judges it (its decisions apply)


@lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def load() -> None:
    """Load the detector's model now (≈0.6 s, once per process) rather than in the first batch it judges: loaded
    there, it held up a fresh worker's first scoring batch and every page behind it."""
    _identifier()


def _mostly_non_latin(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return False
    latin = sum(1 for c in letters if c.isascii() or "LATIN" in unicodedata.name(c, ""))
    return latin < len(letters) / 2


def detect(text: str, supported: frozenset[str] = frozenset({"en"})) -> Language:
    """The language of `text`, and whether it is one of `supported` (unsure counts as supported)."""
    head = text[:DETECT_CHARS]
    code, prob = _identifier().classify(head)
    prob = float(prob)
    sure = prob >= MIN_PROBABILITY and (len(head.split()) >= MIN_WORDS or _mostly_non_latin(head))
    if not sure:
        return Language("", round(prob, 3), True)
    return Language(code, round(prob, 3), code in supported or code == NO_LANGUAGE)
