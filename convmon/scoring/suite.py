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
from .decisions import Calibration, Decision, decide, redacted_span
from . import language
from .language import Language, detect
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
    toxicity: np.ndarray  # [n] length-calibrated (decisions.aggregate)
    sentiment_probs: np.ndarray  # [n, 3] negative, neutral, positive
    jailbreak: np.ndarray  # [n]
    policy: np.ndarray  # [n, n_policies], over every piece
    policy_gated: np.ndarray  # [n, n_policies], over the pieces the policy's topic gate passes (0: none)


@dataclass
class TextScores:
    """One message: a Decision per risk signal and policy, sentiment, embedding, language, and its pieces."""

    decisions: dict[str, Decision]
    sentiment_probs: np.ndarray
    embedding: np.ndarray
    language: Language
    spans: list[tuple[int, int]]  # each piece's characters in `norm_text`
    norm_text: str

    def evidence(self) -> list[dict]:
        """The deciding piece of every hit, redacted: {signal, score, start, end, excerpt} (offsets into
        text_redacted)."""
        out = []
        for d in self.decisions.values():
            if d.hit and d.piece >= 0:
                start, end, excerpt = redacted_span(self.norm_text, *self.spans[d.piece])
                out.append({"signal": d.signal, "score": round(float(d.decided), 4), "start": start, "end": end,
                            "excerpt": excerpt})
        return out


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


def window_ranges(n_body: int, window: int = WINDOW_TOKENS) -> list[tuple[int, int]]:
    """[start, end) ranges over a message's n_body word pieces (without [CLS]/[SEP]): windows of `window` − 2
    pieces that start every window_step() pieces, the last one ending at the end, so that a sentence cut
    at one window's edge is whole in the next."""
    size, step = window - 2, window_step(window)
    if n_body <= size:
        return [(0, n_body)]
    return [(i, i + size) for i in [*range(0, n_body - size, step), n_body - size]]


def sentence_ranges(body: Sequence[int], ends: set[int], window: int = WINDOW_TOKENS) -> list[tuple[int, int]]:
    """[start, end) ranges of the sentences of `body` (split after a word piece in `ends`: . ! ?);
    sentences under MIN_SENTENCE_TOKENS join the next, longer ones are cut at the window size."""
    out, start = [], 0
    for i, t in enumerate(body):
        n = i + 1 - start
        if (t in ends and n >= MIN_SENTENCE_TOKENS) or n == window - 2:
            out.append((start, i + 1))
            start = i + 1
    if start < len(body):
        out.append((start, len(body)))
    return out[:MAX_SENTENCES]


def piece_ranges(ids: Sequence[int], ends: set[int], max_tokens: int = MAX_TOKENS) -> list[tuple[int, int]]:
    """What the encoder sees of one message, as [start, end) ranges over its body (ids without [CLS]/[SEP]):
    the whole message when it fits in max_tokens word pieces, else its windows and its sentences."""
    n_body = len(ids) - 2
    if len(ids) <= max_tokens:
        return [(0, n_body)]
    return window_ranges(n_body) + sentence_ranges(ids[1:-1], ends)


def _with_specials(ids: list[int], ranges: list[tuple[int, int]]) -> list[list[int]]:
    return [[ids[0], *ids[1 + a : 1 + b], ids[-1]] for a, b in ranges]


def windows(ids: list[int], max_tokens: int = MAX_TOKENS, window: int = WINDOW_TOKENS) -> list[list[int]]:
    """[CLS] … [SEP] word pieces → overlapping windows, each with its own [CLS]/[SEP] (a message of at most
    max_tokens is one piece, unchanged)."""
    if len(ids) <= max_tokens:
        return [ids]
    return _with_specials(ids, window_ranges(len(ids) - 2, window))


def sentences(ids: list[int], ends: set[int], window: int = WINDOW_TOKENS) -> list[list[int]]:
    """[CLS] … [SEP] → one piece per sentence, each with [CLS]/[SEP] (see sentence_ranges)."""
    return _with_specials(ids, sentence_ranges(ids[1:-1], ends, window))


def pieces(ids: list[int], ends: set[int], max_tokens: int = MAX_TOKENS) -> list[list[int]]:
    """The word pieces of each of `piece_ranges`, with [CLS]/[SEP]."""
    if len(ids) <= max_tokens:
        return [ids]
    return _with_specials(ids, piece_ranges(ids, ends, max_tokens))


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

    def run_pieces(self, texts: Sequence[str], sub_batch: int = SUB_BATCH) -> "Pieces":
        """All outputs for every piece of `texts` (see `pieces`), with which text and characters each covers."""
        norms = [normalize(t) for t in texts]
        encodings = self.tokenizer.encode_batch(norms, add_special_tokens=True) if texts else []
        seen, owner, spans = [], [], []
        for i, e in enumerate(encodings):
            ranges = piece_ranges(e.ids, self.sentence_ends, self.max_tokens)
            seen += _with_specials(e.ids, ranges) if len(ranges) > 1 else [e.ids]
            owner += [i] * len(ranges)
            offs = e.offsets
            spans += [(offs[1 + a][0], offs[b][1]) if b > a else (0, 0) for a, b in ranges]
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
        outputs = {name: np.concatenate(parts)[inverse] for name, parts in chunks.items() if parts}
        return Pieces(outputs, np.array(owner, dtype=np.int64), spans, norms)

    def run(self, texts: Sequence[str], sub_batch: int = SUB_BATCH) -> dict[str, np.ndarray]:
        """All outputs for `texts`, in input order, reduced per text by `_reduce` (the plain max over
        pieces for risk outputs: the length-calibrated decisions are in scoring/decisions.py)."""
        return self.run_pieces(texts, sub_batch).reduced() if texts else {}


@dataclass
class Pieces:
    """Outputs per piece (a message of up to MAX_TOKENS word pieces is one piece; a longer one its windows
    and sentences), `owner[k]` the text piece k belongs to, `spans[k]` its [start, end) characters in
    `texts[owner[k]]`, the normalised text the encoder read (normalize.py)."""

    outputs: dict[str, np.ndarray]
    owner: np.ndarray
    spans: list[tuple[int, int]]
    texts: list[str]

    def of(self, i: int) -> np.ndarray:
        """Indices of text i's pieces."""
        return np.flatnonzero(self.owner == i)

    def reduced(self) -> dict[str, np.ndarray]:
        if len(self.owner) == len(self.texts):
            return dict(self.outputs)
        idx = [self.of(i) for i in range(len(self.texts))]
        return {name: np.stack([_reduce(name, v[k]) for k in idx]).astype(v.dtype) for name, v in self.outputs.items()}


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
        self.calibration = Calibration.from_manifest(suite)
        language.load()  # at start, not in the first batch
        files = (self.model_dir / suite["file"], self.model_dir / suite["tokenizer"], threads)
        if in_child_process:
            from .encoder_process import EncoderProcess

            self.encoder = EncoderProcess(*files)
        else:
            self.encoder = Encoder(*files)

    def close(self) -> None:
        if hasattr(self.encoder, "close"):
            self.encoder.close()

    def score(self, texts: Sequence[str], roles: Optional[Sequence[str]] = None) -> list[TextScores]:
        """Each text's decisions (scoring/decisions.py) for the speaker in `roles` (default: user)."""
        if not texts:
            return []
        p = self.encoder.run_pieces(texts)
        out = []
        for i, norm in enumerate(p.texts):
            k = p.of(i)
            parts = {name: v[k] for name, v in p.outputs.items()}
            lang = detect(norm, self.calibration.languages)
            role = roles[i] if roles is not None else "user"
            decisions = decide(parts, self.calibration, self.policy_ids, role, judged=lang.supported)
            out.append(TextScores(decisions, _reduce("sentiment_probs", parts["sentiment_probs"]),
                                  _reduce("text_embedding", parts["text_embedding"]), lang,
                                  [p.spans[j] for j in k], norm))
        return out

    def run(self, texts: Sequence[str], roles: Optional[Sequence[str]] = None) -> SuiteOutput:
        """Scores as arrays (evaluation, threshold choice): the same aggregation as the decisions."""
        rows = self.score(texts, roles)
        n, P = len(rows), len(self.policy_ids)
        if n == 0:
            z = np.zeros((0,), np.float32)
            return SuiteOutput(np.zeros((0, EMBEDDING_DIM), np.float32), z, np.zeros((0, 3), np.float32), z,
                               np.zeros((0, P), np.float32), np.zeros((0, P), np.float32))

        def col(sig: str, attr: str = "score") -> np.ndarray:
            return np.array([getattr(r.decisions[sig], attr) for r in rows], np.float32)

        return SuiteOutput(np.stack([r.embedding for r in rows]), col("toxicity"),
                           np.stack([r.sentiment_probs for r in rows]), col("jailbreak"),
                           np.stack([col(pid) for pid in self.policy_ids], axis=1) if P else np.zeros((n, 0), np.float32),
                           np.stack([col(pid, "decided") for pid in self.policy_ids], axis=1) if P
                           else np.zeros((n, 0), np.float32))

    def fields(self, texts: Sequence[str], roles: Optional[Sequence[str]] = None) -> tuple[list[ScoreFields], np.ndarray]:
        """Score-record fields per text (the contract of `convmon score`, chat.scores and `turns`) + embeddings."""
        rows = []
        scored = self.score(texts, roles)
        for r in scored:
            d, p = r.decisions, r.sentiment_probs
            policy_scores = {pid: round(float(d[pid].score), 4) for pid in self.policy_ids}
            rows.append(
                {
                    "toxicity": round(float(d["toxicity"].score), 4),
                    "sentiment": round(float(p[2] - p[0]), 4),
                    "sentiment_label": SENTIMENT_LABELS[int(np.argmax(p))],
                    "jailbreak": round(float(d["jailbreak"].score), 4),
                    "policy_scores": policy_scores,
                    "policy_hits": [pid for pid in self.policy_ids if d[pid].hit],
                    "toxicity_hit": d["toxicity"].hit,
                    "jailbreak_hit": d["jailbreak"].hit,
                    "language": r.language.code,
                    "language_supported": r.language.supported,
                    "evidence": r.evidence(),
                    "_decisions": d,  # for stages and benchmarks in this process (not part of the score record)
                }
            )
        emb = np.stack([r.embedding for r in scored]) if scored else np.zeros((0, EMBEDDING_DIM), np.float32)
        return rows, emb


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
                   description="jailbreak at or above the suite's calibrated threshold; decided on user and tool "
                               "turns only (null on assistant and system turns)"),
        ScoreField("language", {"type": "string"}, "", "LowCardinality(String)",
                   description="ISO 639-1 code detected (py3langid); empty when too short or unclear to tell"),
        ScoreField("language_supported", {"type": ["boolean", "null"]}, None, "Nullable(Bool)",
                   description="false: a language the suite was not trained on; its scores are kept, no decision made"),
        ScoreField("evidence", {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["signal", "score", "start", "end", "excerpt"],
            "properties": {"signal": {"type": "string"}, "score": {"type": "number"},
                           "start": {"type": "integer", "minimum": 0}, "end": {"type": "integer", "minimum": 0},
                           "excerpt": {"type": "string"}}}},
                   [], "Array(Tuple(signal LowCardinality(String), score Float32, start UInt32, end UInt32, "
                       "excerpt String))",
                   description="per hit, the part of the text that decided it: character offsets into text_redacted "
                               "and that excerpt, redacted"),
    )

    def __init__(self, model_dir: Optional[Path] = None, threads: int = 1, in_child_process: bool = False):
        self.model = SuiteModel(model_dir, threads, in_child_process)
        self.version = self.model.version

    def close(self) -> None:
        self.model.close()

    def score(self, turns: Sequence[ChatTurn]) -> list[ScoreFields]:
        rows, emb = self.model.fields([t.text for t in turns], [t.role for t in turns])
        for row, e in zip(rows, emb):
            row["_embedding"] = e  # for the drift stage; not part of the published score record
        return rows
