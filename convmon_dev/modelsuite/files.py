"""Files of the model suite: hashes, JSONL, policy folders (shared by data, train, build and eval)."""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from convmon_dev.modelsuite.evaluate import read_set


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]


@dataclass
class Policy:
    id: str
    folder: Path
    spec: dict

    def claims(self) -> list[dict]:
        return read_jsonl(self.folder / self.spec.get("claims_file", "claims.jsonl"))

    def split(self, name: str) -> list[dict]:
        return read_set(self.folder / self.spec.get(f"{name}_file", f"{name}.jsonl"))


def load_policies(models_dir: Path) -> list[Policy]:
    out = []
    for spec_path in sorted((models_dir / "policies").glob("*/policy.toml")):
        spec = tomllib.loads(spec_path.read_text())
        if spec.get("id") != spec_path.parent.name:
            raise SystemExit(f"{spec_path}: id {spec.get('id')!r} must equal its folder name")
        out.append(Policy(spec["id"], spec_path.parent, spec))
    return out
