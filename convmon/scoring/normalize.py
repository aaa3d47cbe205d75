"""Unicode normalisation applied before any matching, so trivial obfuscation does not slip through.

NFKC folds full-width and compatibility forms (ｆｏｏ＠ｅｘａｍｐｌｅ．ｃｏｍ, ４１１１…, ligatures,
superscripts) to their plain forms; invisible format characters (zero-width spaces and
joiners, soft hyphens, word joiners, bidi controls, BOM) are removed.
"""

from __future__ import annotations

import re
import unicodedata

# Zero-width and invisible formatting characters, bidi embeddings/overrides/isolates, BOM,
# soft hyphen, Mongolian vowel separator, and the Unicode "tag" block.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0000-\U000e007f]"
)


def normalize(text: str) -> str:
    if text.isascii():
        return text
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
