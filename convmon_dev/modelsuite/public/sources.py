"""Public labelled sources: where each one lives (repository, commit, path), its licence, and how
its rows become convmon rows. Dev-time only (`convmon models data`), never imported at run time.

A source module (toxicity.py, sentiment.py, jailbreak.py, climate.py) declares `SOURCES`, a list
of `Source`, each with a `read` function: `read(git: GitFile) -> list[Row]`. Rows are plain dicts
`{"text": str, "label": int | str, "tag": str (optional, a sub-category useful in reports)}`.

Roles:
- "train": may be used for training; a deterministic ~15% of it (by text hash) is a dev split
  used for early stopping and threshold choice.
- "eval":  never trained on and never used to choose anything: the cross-source evaluation.

Git mirrors come from the `fetch` tool (a bare git directory per repository, by default under
/work/.mirror/<owner>+<name>/repo); files are read at the pinned commit with `git show`.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

Row = dict
ALLOWED_LICENCES = ("MIT", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "CC0-1.0", "CC-BY-4.0", "CC-BY-3.0",
                    "CC-BY-SA-4.0", "CC-BY-SA-3.0")
DEFAULT_MIRRORS = Path("/work/.mirror")


class GitFile:
    """Reads files of one repository at one commit from a bare git mirror."""

    def __init__(self, git_dir: Path, commit: str):
        self.git_dir, self.commit = git_dir, commit

    def read_bytes(self, path: str) -> bytes:
        try:
            return subprocess.run(["git", "--git-dir", str(self.git_dir), "show", f"{self.commit}:{path}"],
                                  check=True, capture_output=True).stdout
        except subprocess.CalledProcessError as e:
            raise SystemExit(f"{self.git_dir}: cannot read {path} at {self.commit}: "
                             f"{e.stderr.decode(errors='replace').strip()}") from None

    def read_text(self, path: str) -> str:
        return self.read_bytes(path).decode("utf-8", errors="replace")


@dataclass
class Source:
    id: str  # short, unique across tasks, e.g. "hatecheck"
    task: str  # toxicity | sentiment | jailbreak | climate
    role: str  # train | eval
    repo: str  # owner/name on GitHub
    commit: str  # 40 hex digits
    paths: list[str]  # files read at that commit
    licence: str  # one of ALLOWED_LICENCES
    licence_evidence: str  # e.g. "LICENSE file at that commit: CC BY 4.0"
    citation: str  # paper or project the data comes from
    labels: str  # how the source's labels map to convmon's, in words
    filters: str  # what was dropped or sampled, in words
    read: Callable[[GitFile], list[Row]] = field(repr=False)
    max_rows: int | None = None  # deterministic sample cap (by text hash), after filtering
    dev_share: float = 0.15  # of a training source, the share (by text hash) that is its dev split

    def __post_init__(self):
        if self.licence not in ALLOWED_LICENCES:
            raise ValueError(f"{self.id}: licence {self.licence!r} does not allow shipping a trained model")
        if self.role not in ("train", "eval"):
            raise ValueError(f"{self.id}: role must be train or eval")
        if not re.fullmatch(r"[0-9a-f]{40}", self.commit):
            raise ValueError(f"{self.id}: commit must be 40 hex digits")


def mirror_dir(repo: str, root: Path = DEFAULT_MIRRORS) -> Path:
    base = root / repo.replace("/", "+")
    for cand in (base / "repo", base):
        if (cand / "HEAD").is_file() or (cand / "objects").is_dir():
            return cand
    raise SystemExit(f"no git mirror of {repo} under {root}: fetch github:{repo} first (see models/data/DATA_CARD.md)")


_ws = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """NFC, collapse whitespace, strip. Used on every row."""
    return _ws.sub(" ", unicodedata.normalize("NFC", text)).strip()


def dedup_key(text: str) -> str:
    """Key for exact-duplicate detection: lower-case letters and digits only."""
    return re.sub(r"[^0-9a-z]+", "", text.lower())


def stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def is_dev(text: str, share: float = 0.15) -> bool:
    """Deterministic train/dev assignment by text hash (same text → same split on every machine)."""
    return (stable_hash("split:" + dedup_key(text)) % 10_000) < share * 10_000
