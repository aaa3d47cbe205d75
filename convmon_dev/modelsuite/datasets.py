"""Which labelled rows train, tune and evaluate each head (one place, read by train, build and eval).

- train: public training sources (split "train", models/data/public/<task>/), real benign chat (the train
  split of the benign tuning sources, label 0 for every binary head) + our hand-written
  train sets (models/data/<task>/train*.jsonl, policies' train.jsonl and claim banks; repeated
  HANDWRITTEN_REPEAT times), with short benign chat as label 0 for the binary heads, ordinary text
  from the other tasks as label 0 for jailbreak and the policies, and benign prompts from the
  jailbreak task's public sources as label 0 for toxicity.
- tune: the public training sources' "dev" split picks the epoch (train); the dev split of the benign
  tuning sources chooses the decisions: thresholds at a false-hit budget, topic gates, length correction
  (build, calibrate.py).
- evaluate: each evaluation-only public source (never trained on, never used to choose anything)
  and the hand-written dev sets, reported per source.
"""

from __future__ import annotations

import json
from pathlib import Path

from convmon_dev.modelsuite.files import Policy, load_policies, read_jsonl
from convmon_dev.modelsuite.evaluate import read_set
from convmon_dev.modelsuite.public.sources import dedup_key

BINARY = ("toxicity", "jailbreak")
HANDWRITTEN_REPEAT = 6  # our sets are small but are the only chat-style and hard-case data (see README)
BENIGN_REPEAT = 2  # real benign chat is a few thousand rows among tens of thousands: seen twice as often
CROSS_NEGATIVES = 3000  # ordinary text from the other tasks, label 0, for jailbreak and policies


def public_dir(models_dir: Path) -> Path:
    return models_dir / "data" / "public"


def public_rows(models_dir: Path, task: str, split: str) -> list[dict]:
    folder = public_dir(models_dir) / task
    rows = []
    for path in sorted(folder.glob("*.jsonl")):
        rows += [r for r in read_jsonl(path) if r["split"] == split]
    return rows


def handwritten_train_files(models_dir: Path, task: str) -> list[Path]:
    """A task's hand-written training files: train.jsonl (the train side of the train/dev split)
    and any train_<topic>.jsonl written later for a gap (never split, so never in dev)."""
    return sorted((models_dir / "data" / task).glob("train*.jsonl"))


BENIGN = "benign"  # models/data/public/benign/: real benign chat, label 0 for every signal, each row with a role


def benign_rows(models_dir: Path, splits: tuple[str, ...]) -> list[dict]:
    """Benign chat turns of the given splits: "train"/"dev" are the tuning sources (thresholds, gates, length
    correction: convmon_dev/modelsuite/calibrate.py), "eval" the held-out ones (`convmon bench false-pages`)."""
    folder = public_dir(models_dir) / BENIGN
    return [r for path in sorted(folder.glob("*.jsonl")) for r in read_jsonl(path) if r["split"] in splits]


FEEDBACK_DIR = "feedback"  # models/data/feedback/*.jsonl: `convmon feedback export` files a deployment adds
VERDICT_LABEL = {"confirmed": 1, "missed": 1, "false_alarm": 0}


def feedback_rows(models_dir: Path) -> dict[str, list[dict]]:
    """task → labelled turns from exported feedback (redacted text; toxicity, jailbreak or a policy id):
    confirmed and missed are label 1, false_alarm label 0. Other signals (sentiment_shift, rates) train nothing."""
    out: dict[str, list[dict]] = {}
    for path in sorted((models_dir / "data" / FEEDBACK_DIR).glob("*.jsonl")):
        for r in read_jsonl(path):
            task = r["signal"][len("policy:"):] if r["signal"].startswith("policy:") else r["signal"]
            if r.get("verdict") in VERDICT_LABEL and r.get("text_redacted"):
                out.setdefault(task, []).append({"text": r["text_redacted"], "label": VERDICT_LABEL[r["verdict"]],
                                                 "source": f"feedback:{path.stem}", "tag": r["verdict"]})
    return out


def _policy_train(pol: Policy) -> list[dict]:
    rows = [dict(r, source="handwritten") for r in pol.split("train")]
    for c in pol.claims():
        rows.append({"text": c["claim"], "label": 1, "source": "claim_bank", "tag": "claim"})
        rows += [{"text": t, "label": 0, "source": "claim_bank", "tag": "counter_example"} for t in c.get("counter_examples", [])]
        rows += [{"text": t, "label": 0, "source": "claim_bank", "tag": "mainstream"} for t in c.get("mainstream", [])]
    return rows


def training_rows(models_dir: Path) -> dict[str, list[dict]]:
    """task → rows with text and label (policies under their id)."""
    data = models_dir / "data"
    benign = [dict(r, source="handwritten") for r in read_set(data / "common" / "benign_short.jsonl")]
    out: dict[str, list[dict]] = {}
    for task in ("toxicity", "sentiment", "jailbreak"):
        hand = [dict(r, source="handwritten") for path in handwritten_train_files(models_dir, task)
                for r in read_set(path)]
        out[task] = public_rows(models_dir, task, "train") + hand * HANDWRITTEN_REPEAT
        if task in BINARY:
            out[task] += benign
    for pol in load_policies(models_dir):
        out[pol.id] = public_rows(models_dir, pol.id, "train") + _policy_train(pol) * HANDWRITTEN_REPEAT + benign
    # Real benign chat (the train split of the benign tuning sources: assistant replies of many models, user
    # requests, people in distress, mainstream climate statements) is label 0 for every binary head: what
    # traffic's benign side looks like. Its dev split chooses the decisions (calibrate.py) and never trains.
    chat = [dict(r, label=0) for r in benign_rows(models_dir, ("train",))]
    for task in (*BINARY, *(p.id for p in load_policies(models_dir))):
        out[task] += chat * BENIGN_REPEAT
    # Labels from where convmon runs (`convmon feedback export` files in models/data/feedback/): that
    # deployment's own false alarms and misses, seen as often as the hand-written rows.
    for task, rows in feedback_rows(models_dir).items():
        if task in out and task != "sentiment":
            out[task] += rows * HANDWRITTEN_REPEAT
    # Text from the other tasks that is plainly not this task's positive is label 0 (deterministic
    # samples): ordinary chat for jailbreak and policies; benign prompts (requests, questions,
    # "kill a process") for toxicity, which otherwise never sees an assistant-style request.
    def sample(texts: set[str], tag: str) -> list[dict]:
        ordered = sorted(texts)
        step = max(1, len(ordered) // CROSS_NEGATIVES)
        return [{"text": t, "label": 0, "source": "cross_task", "tag": tag} for t in ordered[::step]]

    ordinary = sample({r["text"] for t in ("sentiment", "toxicity") for r in out[t]}, "ordinary")
    out["jailbreak"] += ordinary
    for pol in load_policies(models_dir):
        out[pol.id] += ordinary
    out["toxicity"] += sample({r["text"] for r in out["jailbreak"] if int(r["label"]) == 0
                               and r["source"] not in ("cross_task", "handwritten")}, "benign_prompt")
    return out


def tuning_rows(models_dir: Path) -> dict[str, list[dict]]:
    """task → its public tuning split, for early stopping (train) and thresholds (build)."""
    tasks = ["toxicity", "sentiment", "jailbreak"] + [p.id for p in load_policies(models_dir)]
    return {t: public_rows(models_dir, t, "dev") for t in tasks}


def threshold_rows(models_dir: Path) -> dict[str, list[dict]]:
    """task → rows a binary signal's threshold is chosen on: its own tuning split plus, as label 0,
    the other tasks' tuning texts it will meet in traffic and must not flag — everything else for
    a policy (off topic), toxicity and sentiment texts for jailbreak, benign prompts for toxicity.
    Without them a policy's threshold only ever saw climate-vocabulary negatives."""
    own = tuning_rows(models_dir)
    policies = [p.id for p in load_policies(models_dir)]

    def zeros(task: str, keep=lambda r: True) -> list[dict]:
        return [dict(r, label=0, source=f"{r['source']} (as 0)") for r in own[task] if keep(r)]

    out = {"toxicity": own["toxicity"] + zeros("jailbreak", lambda r: int(r["label"]) == 0),
           "jailbreak": own["jailbreak"] + zeros("toxicity") + zeros("sentiment")}
    for pid in policies:
        out[pid] = own[pid] + [r for t in own if t != pid for r in zeros(t)]
    return out


def evaluation_sets(models_dir: Path) -> list[tuple[str, str, list[dict], int]]:
    """(name, task, rows, dropped): per task, all evaluation-only public sources together (each row
    keeps its `source`; some sources hold one class only), then the hand-written dev sets. A row
    whose text (dedup_key) also feeds training or threshold choice in any task is dropped from
    evaluation (`dropped` counts them): short chat like "why?" is in several sources."""
    seen = {dedup_key(r["text"]) for rows in (*training_rows(models_dir).values(), *threshold_rows(models_dir).values())
            for r in rows}
    raw = []
    root = public_dir(models_dir)
    for task_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name != BENIGN) if root.is_dir() else []:
        rows = [r for path in sorted(task_dir.glob("*.jsonl")) for r in read_jsonl(path) if r["split"] == "eval"]
        if rows:
            raw.append((f"public:{task_dir.name}", task_dir.name, rows))
    data = models_dir / "data"
    for task in ("toxicity", "sentiment", "jailbreak"):
        raw.append((f"handwritten:{task}", task, read_set(data / task / "dev.jsonl")))
    for pol in load_policies(models_dir):
        raw.append((f"handwritten:{pol.id}", pol.id, pol.split("dev")))
    out = []
    for name, task, rows in raw:
        kept = [r for r in rows if dedup_key(r["text"]) not in seen]
        out.append((name, task, kept, len(rows) - len(kept)))
    return out


def data_hashes(models_dir: Path) -> dict[str, str]:
    """sha256 of every file that feeds training, by path relative to models/."""
    from convmon_dev.modelsuite.files import sha256

    files = sorted(public_dir(models_dir).rglob("*.jsonl")) if public_dir(models_dir).is_dir() else []
    data = models_dir / "data"
    files += [data / "common" / "benign_short.jsonl"]
    files += sorted((data / FEEDBACK_DIR).glob("*.jsonl"))
    files += [p for t in ("toxicity", "sentiment", "jailbreak") for p in handwritten_train_files(models_dir, t)]
    for pol in load_policies(models_dir):
        files += [pol.folder / "train.jsonl", pol.folder / pol.spec.get("claims_file", "claims.jsonl")]
    return {str(p.relative_to(models_dir)): sha256(p) for p in files}


def dump(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
