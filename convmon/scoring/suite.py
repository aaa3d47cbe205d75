"""The model suite at run time: ONE onnxruntime session, ONE int8 encoder pass per message.

models/suite.onnx = all-MiniLM-L6-v2 (int8, per channel) with its top layers fine-tuned on public
labelled data, and heads on the mean-pooled output: toxicity, sentiment (3 classes), jailbreak,
and one head per topic policy (models/policies/<id>/); plus the drift embedding from the last
frozen layer (see convmon_dev/modelsuite/bert.py). A message longer than MAX_TOKENS is scored in
overlapping windows. Thresholds, label order and policy ids come from models/manifest.json,
written by `convmon models build`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .fields import ScoreField
from ..contract import ChatTurn
from ..wire import EMBEDDING_DIM
from .base import ScoreFields
from .normalize import normalize
from ..resources import data_path

SENTIMENT_LABELS = ("negative", "neutral", "positive")
MAX_TOKENS = 256  # all-MiniLM-L6-v2 was trained on 256 word pieces: longer texts are scored in windows
# A longer message is scored in overlapping windows of WINDOW_TOKENS word pieces (the length the heads
# were fine-tuned on) AND sentence by sentence: mean pooling dilutes one insult among 120 harmless
# word pieces (measured: 0.15 in its window against 0.96 alone), but not in its own sentence.
WINDOW_TOKENS = 128
MAX_WINDOWS = 128  # ≈12,000 word pieces, more than the worker's default 64 KiB size cap holds in English text
MAX_SENTENCES = 512
MIN_SENTENCE_TOKENS = 6  # shorter sentences ("Ok.", "Thanks!") are joined to the next one
# Messages per onnxruntime call. Dynamic int8 quantisation picks each activation's scale from
# the whole input tensor, so in a padded multi-message batch a turn's scores depend on its
# neighbours (measured: up to 0.09 on toxicity). One message per call makes every score
# reproducible (worker == `convmon score`), for about 12% less throughput than batches of 8.
SUB_BATCH = 1


def default_model_dir() -> Path:
    return data_path("models")


@dataclass
class SuiteOutput:
    embedding: np.ndarray  # [n, EMBEDDING_DIM] float32, L2-normalised
    toxicity: np.ndarray  # [n]
    sentiment_probs: np.ndarray  # [n, 3] negative, neutral, positive
    jailbreak: np.ndarray  # [n]
    policy: np.ndarray  # [n, n_policies]


def make_tokenizer(path: Path, max_tokens: int = MAX_TOKENS):
    """The tokenizer, truncating only past the last window (MAX_WINDOWS windows)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    tok.enable_truncation(max_length=max(max_tokens, WINDOW_TOKENS + (MAX_WINDOWS - 1) * window_step()))
    tok.no_padding()
    return tok


def window_step(window: int = WINDOW_TOKENS) -> int:
    """Word pieces between window starts: a quarter of each window overlaps the next."""
    return (window - 2) * 3 // 4


def windows(ids: list[int], max_tokens: int = MAX_TOKENS, window: int = WINDOW_TOKENS) -> list[list[int]]:
    """[CLS] … [SEP] word pieces → overlapping windows, each with its own [CLS]/[SEP].

    A message of at most max_tokens is one piece, unchanged. A longer one is cut into windows of
    `window` − 2 word pieces that start every window_step() pieces, so that a sentence cut at one
    window's edge is whole in the next.
    """
    if len(ids) <= max_tokens:
        return [ids]
    cls, body, sep = ids[0], ids[1:-1], ids[-1]
    size, step = window - 2, window_step(window)
    starts = [*range(0, len(body) - size, step), len(body) - size]  # the last window ends at the end
    return [[cls, *body[i : i + size], sep] for i in starts]


def sentences(ids: list[int], ends: set[int], window: int = WINDOW_TOKENS) -> list[list[int]]:
    """[CLS] … [SEP] → one piece per sentence (split after a word piece in `ends`: . ! ?), each with
    [CLS]/[SEP]; sentences under MIN_SENTENCE_TOKENS join the next, longer ones are cut at the window size."""
    cls, body, sep = ids[0], ids[1:-1], ids[-1]
    out, cur = [], []
    for t in body:
        cur.append(t)
        if (t in ends and len(cur) >= MIN_SENTENCE_TOKENS) or len(cur) == window - 2:
            out.append([cls, *cur, sep])
            cur = []
    if cur:
        out.append([cls, *cur, sep])
    return out[:MAX_SENTENCES]


def pieces(ids: list[int], ends: set[int], max_tokens: int = MAX_TOKENS) -> list[list[int]]:
    """What the encoder sees of one message: the message itself when it fits in max_tokens word
    pieces, else its windows and its sentences."""
    if len(ids) <= max_tokens:
        return [ids]
    return windows(ids, max_tokens) + sentences(ids, ends)


def session_options(threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3  # errors only
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning threads steal the core the Faust event loop needs (measured: half the throughput).
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


def _reduce(name: str, parts: np.ndarray) -> np.ndarray:
    """One message's outputs over its windows: risk = the highest window; sentiment and embedding = the mean."""
    if name == "text_embedding":
        m = parts.mean(axis=0)
        return m / max(float(np.linalg.norm(m)), 1e-9)
    if name == "sentiment_probs":
        return parts.mean(axis=0)
    return parts.max(axis=0)


class Encoder:
    """Tokenise + run an ONNX graph whose inputs are BERT's and whose outputs include `text_embedding`.

    Messages longer than max_tokens are scored in overlapping windows and sentence by sentence (see
    `pieces`), reduced per message by `_reduce`: a toxic sentence at the end of a long message is found.
    """

    def __init__(self, model_path: Path, tokenizer_path: Path, threads: int = 1, max_tokens: int = MAX_TOKENS):
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(model_path), session_options(threads), providers=["CPUExecutionProvider"])
        self.max_tokens = max_tokens
        self.tokenizer = make_tokenizer(tokenizer_path, max_tokens)
        self.sentence_ends = {i for i in (self.tokenizer.token_to_id(t) for t in (".", "!", "?")) if i is not None}
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, texts: Sequence[str], sub_batch: int = SUB_BATCH) -> dict[str, np.ndarray]:
        """All outputs for `texts`, in input order."""
        if not texts:
            return {}
        encodings = self.tokenizer.encode_batch([normalize(t) for t in texts], add_special_tokens=True)
        seen, owner = [], []
        for i, e in enumerate(encodings):
            parts = pieces(e.ids, self.sentence_ends, self.max_tokens)
            seen += parts
            owner += [i] * len(parts)
        order = np.argsort([len(p) for p in seen], kind="stable")
        chunks: dict[str, list[np.ndarray]] = {name: [] for name in self.output_names}
        for start in range(0, len(order), sub_batch):
            idx = order[start : start + sub_batch]
            width = max(len(seen[i]) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                ids[row, : len(seen[i])] = seen[i]
                mask[row, : len(seen[i])] = 1
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self.input_names:
                feeds["token_type_ids"] = np.zeros_like(ids)
            for name, value in zip(self.output_names, self.session.run(self.output_names, feeds)):
                chunks[name].append(value)
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        per_piece = {name: np.concatenate(parts)[inverse] for name, parts in chunks.items()}
        if len(seen) == len(texts):
            return per_piece
        owner_arr = np.array(owner)
        return {name: np.stack([_reduce(name, v[owner_arr == i]) for i in range(len(texts))]).astype(v.dtype)
                for name, v in per_piece.items()}


class SuiteModel:
    """models/suite.onnx + tokenizer + manifest: texts → all signals."""

    def __init__(self, model_dir: Optional[Path] = None, threads: int = 1, in_child_process: bool = False):
        self.model_dir = Path(model_dir or default_model_dir())
        manifest_path = self.model_dir / "manifest.json"
        if not manifest_path.is_file():
            raise FileNotFoundError(
                f"no model suite at {self.model_dir} (manifest.json missing): run `convmon models build`"
            )
        self.manifest = json.loads(manifest_path.read_text())
        suite = self.manifest["suite"]
        self.version: str = suite["version"]
        self.thresholds: dict[str, float] = suite["thresholds"]
        self.policy_ids: list[str] = suite["policies"]
        self.policy_thresholds: dict[str, float] = suite["policy_thresholds"]
        files = (self.model_dir / suite["file"], self.model_dir / suite["tokenizer"], threads)
        if in_child_process:
            from .encoder_process import EncoderProcess

            self.encoder = EncoderProcess(*files)
        else:
            self.encoder = Encoder(*files)

    def close(self) -> None:
        if hasattr(self.encoder, "close"):
            self.encoder.close()

    def run(self, texts: Sequence[str]) -> SuiteOutput:
        out = self.encoder.run(texts)
        n = len(texts)
        if n == 0:
            z = np.zeros((0,), np.float32)
            return SuiteOutput(np.zeros((0, EMBEDDING_DIM), np.float32), z, np.zeros((0, 3), np.float32), z,
                               np.zeros((0, len(self.policy_ids)), np.float32))
        return SuiteOutput(out["text_embedding"], out["toxicity"], out["sentiment_probs"], out["jailbreak"], out["policy"])

    def fields(self, texts: Sequence[str]) -> tuple[list[ScoreFields], np.ndarray]:
        """Score-record fields per text (the contract of `convmon score`, chat.scores and `turns`) + embeddings."""
        o = self.run(texts)
        rows = []
        for i in range(len(texts)):
            p = o.sentiment_probs[i]
            policy_scores = {pid: round(float(o.policy[i, j]), 4) for j, pid in enumerate(self.policy_ids)}
            rows.append(
                {
                    "toxicity": round(float(o.toxicity[i]), 4),
                    "sentiment": round(float(p[2] - p[0]), 4),
                    "sentiment_label": SENTIMENT_LABELS[int(np.argmax(p))],
                    "jailbreak": round(float(o.jailbreak[i]), 4),
                    "policy_scores": policy_scores,
                    "policy_hits": [pid for pid, s in policy_scores.items() if s >= self.policy_thresholds[pid]],
                    "toxicity_hit": bool(o.toxicity[i] >= self.thresholds["toxicity"]),
                    "jailbreak_hit": bool(o.jailbreak[i] >= self.thresholds["jailbreak"]),
                }
            )
        return rows, o.embedding


class SuiteScorer:
    """Scorer: toxicity, sentiment, jailbreak, policies and the drift embedding, in one encoder pass."""

    name = "suite"
    FIELDS = (
        ScoreField("toxicity", {"type": ["number", "null"], "minimum": 0, "maximum": 1}, None, "Nullable(Float32)"),
        ScoreField("sentiment", {"type": ["number", "null"], "minimum": -1, "maximum": 1}, None, "Nullable(Float32)",
                   description="p(positive) - p(negative)"),
        ScoreField("sentiment_label", {"enum": [*SENTIMENT_LABELS, None]}, None, "LowCardinality(Nullable(String))"),
        ScoreField("jailbreak", {"type": ["number", "null"], "minimum": 0, "maximum": 1}, None, "Nullable(Float32)"),
        ScoreField("policy_scores", {"type": "object", "additionalProperties": {"type": "number", "minimum": 0,
                                                                               "maximum": 1}},
                   {}, "Map(LowCardinality(String), Float32)"),
        ScoreField("policy_hits", {"type": "array", "items": {"type": "string"}}, [], "Array(LowCardinality(String))",
                   description="policies at or above their calibrated threshold", hit=True),
        ScoreField("toxicity_hit", {"type": ["boolean", "null"]}, None, "Nullable(Bool)", hit=True,
                   description="toxicity at or above the suite's calibrated threshold: the one 'toxic' decision"),
        ScoreField("jailbreak_hit", {"type": ["boolean", "null"]}, None, "Nullable(Bool)", hit=True,
                   description="jailbreak at or above the suite's calibrated threshold"),
    )

    def __init__(self, model_dir: Optional[Path] = None, threads: int = 1, in_child_process: bool = False):
        self.model = SuiteModel(model_dir, threads, in_child_process)
        self.version = self.model.version

    def close(self) -> None:
        self.model.close()

    def score(self, turns: Sequence[ChatTurn]) -> list[ScoreFields]:
        rows, emb = self.model.fields([t.text for t in turns])
        for row, e in zip(rows, emb):
            row["_embedding"] = e  # for the drift stage; not part of the published score record
        return rows
