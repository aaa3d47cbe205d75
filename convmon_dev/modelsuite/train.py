"""`convmon models train`: fine-tune MiniLM's top layers and the task heads, multi-task (torch, build-time only).

Affordable on 2 CPU cores because the lower `frozen_layers` layers never change: their outputs are
computed once per text and cached, and only the top layers and the heads train on them. The
frozen layers also give the drift embedding (see bert.py), which therefore does not move when
the heads are retrained.

Texts are seen as the runtime encoder sees them (scoring/suite.py): a message of up to 256 word
pieces whole, a longer one as its overlapping windows of 128, at most `max_windows` of them. A
message's risk logit is the maximum over its pieces, as at run time, so a long message labelled
as an injection teaches the window that holds the injection (multiple-instance learning), and a
long benign message teaches all of its windows.

Writes models/trained/finetuned.safetensors (the top layers in fp16, the heads in fp32: the
build turns them into the int8 suite, torch-free) and models/trained/training.json (settings,
data hashes, per-epoch tuning metrics, time). The epoch kept is the one with the best mean
tuning metric on the public training sources' dev split.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from convmon.scoring.normalize import normalize
from convmon.scoring.suite import MAX_TOKENS, SENTIMENT_LABELS, windows
from convmon_dev.modelsuite import bert
from convmon_dev.modelsuite.datasets import data_hashes, training_rows, tuning_rows
from convmon_dev.modelsuite.files import load_policies
from convmon_dev.modelsuite.metrics import auc, multiclass_report


@dataclass
class TrainConfig:
    frozen_layers: int = 3
    max_tokens: int = MAX_TOKENS  # longer texts are trained on their windows, as the runtime scores them
    max_windows: int = 16  # windows per long text in training (16 windows ≈ 1,500 word pieces)
    # 2 x 6,000 draws per task (was 3 x 9,000): with the longer benign chat and tool outputs of this data an
    # example costs about 2.5x what it did (14 examples/s on our 2 cores), and 3 x 9,000 would take 2.3 h
    epochs: int = 2
    per_task_per_epoch: int = 6000  # examples drawn per task and epoch (bigger sets are subsampled)
    batch_size: int = 32
    lr_layers: float = 6e-5
    lr_heads: float = 1e-3
    weight_decay: float = 0.01
    dropout: float = 0.1
    seed: int = 0
    threads: int = 2


def _torch():
    try:
        import torch
    except ImportError:
        raise SystemExit("training needs torch (build-time only): `make train-deps` installs it into .venv") from None
    return torch


def _modules(torch):
    nn, F = torch.nn, torch.nn.functional

    class Layer(nn.Module):
        """One BERT layer; parameter names map 1:1 to the safetensors names (see NAMES)."""

        NAMES = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
                 "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
                 "i": "intermediate.dense", "o": "output.dense", "oln": "output.LayerNorm"}

        def __init__(self, dropout: float):
            super().__init__()
            H = bert.HIDDEN
            self.q, self.k, self.v, self.ao = (nn.Linear(H, H) for _ in range(4))
            self.aln, self.oln = nn.LayerNorm(H, eps=bert.LN_EPS), nn.LayerNorm(H, eps=bert.LN_EPS)
            self.i, self.o = nn.Linear(H, bert.FFN), nn.Linear(bert.FFN, H)
            self.drop = nn.Dropout(dropout)

        def forward(self, x, mask_add):
            B, L, _ = x.shape

            def heads(t):
                return t.view(B, L, bert.HEADS, bert.HEAD_DIM).transpose(1, 2)

            q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
            s = q @ k.transpose(-1, -2) / math.sqrt(bert.HEAD_DIM) + mask_add
            ctx = (self.drop(s.softmax(-1)) @ v).transpose(1, 2).reshape(B, L, bert.HIDDEN)
            a = self.aln(self.drop(self.ao(ctx)) + x)
            return self.oln(self.drop(self.o(F.gelu(self.i(a)))) + a)

        def load(self, w: dict, i: int):
            with torch.no_grad():
                for attr, name in self.NAMES.items():
                    mod = getattr(self, attr)
                    mod.weight.copy_(torch.from_numpy(w[f"encoder.layer.{i}.{name}.weight"]))
                    mod.bias.copy_(torch.from_numpy(w[f"encoder.layer.{i}.{name}.bias"]))

        def export(self, i: int) -> dict:
            out = {}
            for attr, name in self.NAMES.items():
                mod = getattr(self, attr)
                out[f"encoder.layer.{i}.{name}.weight"] = mod.weight.detach().numpy().astype(np.float16)
                out[f"encoder.layer.{i}.{name}.bias"] = mod.bias.detach().numpy().astype(np.float16)
            return out

    return Layer


def _mask_add(torch, mask):
    return (1.0 - mask[:, None, None, :].float()) * -10000.0


class _Cache:
    """Frozen-layer outputs per piece (a whole text, or one window of a long one), fp16, variable length."""

    def __init__(self, torch, Layer, w: dict, cfg: TrainConfig, texts: list[str], tokenizer, log):
        enc = tokenizer.encode_batch([normalize(t) for t in texts])
        self.ids, self.index = [], {}  # index: text → its piece numbers
        for t, e in zip(texts, enc):
            parts = windows(e.ids, cfg.max_tokens)[: cfg.max_windows]
            self.index[t] = list(range(len(self.ids), len(self.ids) + len(parts)))
            self.ids += [np.array(p, dtype=np.int64) for p in parts]
        log(f"    {len(texts)} texts → {len(self.ids)} pieces")
        word = torch.from_numpy(w["embeddings.word_embeddings.weight"])
        pos = torch.from_numpy(w["embeddings.position_embeddings.weight"])
        typ = torch.from_numpy(w["embeddings.token_type_embeddings.weight"][0])
        ln = torch.nn.LayerNorm(bert.HIDDEN, eps=bert.LN_EPS)
        with torch.no_grad():
            ln.weight.copy_(torch.from_numpy(w["embeddings.LayerNorm.weight"]))
            ln.bias.copy_(torch.from_numpy(w["embeddings.LayerNorm.bias"]))
        layers = []
        for i in range(cfg.frozen_layers):
            layer = Layer(0.0)
            layer.load(w, i)
            layer.eval()
            layers.append(layer)
        self.hidden: list = [None] * len(self.ids)
        order = np.argsort([len(x) for x in self.ids])
        t0, done = time.monotonic(), 0
        with torch.no_grad():
            for start in range(0, len(order), 64):
                idx = order[start : start + 64]
                L = max(len(self.ids[i]) for i in idx)
                ids = torch.zeros((len(idx), L), dtype=torch.long)
                mask = torch.zeros((len(idx), L))
                for r, i in enumerate(idx):
                    ids[r, : len(self.ids[i])] = torch.from_numpy(self.ids[i])
                    mask[r, : len(self.ids[i])] = 1
                x = ln(word[ids] + pos[:L][None] + typ)
                m = _mask_add(torch, mask)
                for layer in layers:
                    x = layer(x, m)
                for r, i in enumerate(idx):
                    self.hidden[i] = x[r, : len(self.ids[i])].to(torch.float16).clone()
                done += len(idx)
                if start // 64 % 100 == 0:
                    log(f"    cached {done}/{len(self.ids)} pieces ({done / max(time.monotonic() - t0, 1e-6):.0f}/s)")

    def length(self, text: str) -> int:
        """Word pieces the encoder runs for `text` (its batching cost)."""
        return sum(self.hidden[i].shape[0] for i in self.index[text])

    def batch(self, torch, texts: list[str]):
        """Hidden states of every piece of `texts`, padded, and each piece's text number in `texts`."""
        idx = [i for t in texts for i in self.index[t]]
        owner = torch.tensor([k for k, t in enumerate(texts) for _ in self.index[t]])
        L = max(self.hidden[i].shape[0] for i in idx)
        x = torch.zeros((len(idx), L, bert.HIDDEN))
        mask = torch.zeros((len(idx), L))
        for r, i in enumerate(idx):
            n = self.hidden[i].shape[0]
            x[r, :n] = self.hidden[i].float()
            mask[r, :n] = 1
        return x, mask, owner


def _per_text(torch, logits, owner, n: int, task: str):
    """Piece logits → one row per text, as the runtime reduces them (suite._reduce): the maximum for a
    risk score, the mean for sentiment."""
    if task == "sentiment":
        total = torch.zeros((n, logits.shape[1])).index_add(0, owner, logits)
        return total / torch.bincount(owner, minlength=n).clamp(min=1)[:, None].float()
    out = torch.full((n, logits.shape[1]), -1e9)
    return out.scatter_reduce(0, owner[:, None].expand_as(logits), logits, reduce="amax", include_self=True)


def train(models_dir: Path, cfg: TrainConfig = TrainConfig(), log: Callable[[str], None] = print) -> dict:
    torch = _torch()
    from tokenizers import Tokenizer
    from safetensors.numpy import save_file

    t_start = time.monotonic()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = random.Random(cfg.seed)
    Layer = _modules(torch)
    policies = [p.id for p in load_policies(models_dir)]
    tasks = ["toxicity", "sentiment", "jailbreak", *policies]
    n_out = {t: (3 if t == "sentiment" else 1) for t in tasks}

    train_rows, tune_rows = training_rows(models_dir), tuning_rows(models_dir)
    for t in tasks:
        log(f"  {t}: {len(train_rows[t])} training rows, {len(tune_rows[t])} tuning rows")
    label_of = {t: (lambda r, t=t: SENTIMENT_LABELS.index(r["label"]) if t == "sentiment" else int(r["label"])) for t in tasks}

    w = bert.load_weights(bert.base_weights_path())
    tokenizer = Tokenizer.from_file(str(models_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    texts = sorted({r["text"] for rows in (*train_rows.values(), *tune_rows.values()) for r in rows})
    log(f"1/3 cache the {cfg.frozen_layers} frozen layers' outputs for {len(texts)} distinct texts")
    cache = _Cache(torch, Layer, w, cfg, texts, tokenizer, log)

    top = torch.nn.ModuleList([Layer(cfg.dropout) for _ in range(cfg.frozen_layers, bert.LAYERS)])
    for k, layer in enumerate(top):
        layer.load(w, cfg.frozen_layers + k)
    heads = torch.nn.ModuleDict({t: torch.nn.Linear(bert.HIDDEN, n_out[t]) for t in tasks})
    opt = torch.optim.AdamW([{"params": top.parameters(), "lr": cfg.lr_layers},
                             {"params": heads.parameters(), "lr": cfg.lr_heads}], weight_decay=cfg.weight_decay)
    # balance classes within each task
    loss_fns = {}
    for t in tasks:
        ys = np.array([label_of[t](r) for r in train_rows[t]])
        if t == "sentiment":
            freq = np.bincount(ys, minlength=3) / len(ys)
            loss_fns[t] = torch.nn.CrossEntropyLoss(weight=torch.tensor(1 / (3 * freq), dtype=torch.float32))
        else:
            loss_fns[t] = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor((ys == 0).sum() / max((ys == 1).sum(), 1)))

    def forward(batch_texts, train_mode: bool):
        """Pooled output of every piece of the texts, and each piece's text number."""
        x, mask, owner = cache.batch(torch, batch_texts)
        m = _mask_add(torch, mask)
        for layer in top:
            x = layer(x, m)
        return (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1e-9), owner

    def logits(t: str, batch_texts: list[str]):
        pooled, owner = forward(batch_texts, False)
        return _per_text(torch, heads[t](pooled), owner, len(batch_texts), t)

    def tune_metrics() -> dict:
        top.eval(), heads.eval()
        out = {}
        with torch.no_grad():
            for t in tasks:
                rows = sorted(tune_rows[t], key=lambda r: cache.length(r["text"]))
                if not rows:
                    continue
                z = torch.cat([logits(t, [r["text"] for r in rows[s : s + 128]])
                               for s in range(0, len(rows), 128)]).numpy()
                y = [label_of[t](r) for r in rows]
                if t == "sentiment":
                    out[t] = multiclass_report([SENTIMENT_LABELS[i] for i in y],
                                               [SENTIMENT_LABELS[i] for i in z.argmax(1)], SENTIMENT_LABELS)["macro_f1"]
                else:
                    out[t] = round(auc(np.array(y), z[:, 0]), 4)
        top.train(), heads.train()
        return out

    log("2/3 train the top layers and heads")
    steps_per_epoch = sum(min(len(train_rows[t]), cfg.per_task_per_epoch) for t in tasks) // cfg.batch_size
    total = steps_per_epoch * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, s / max(1, total // 10)) * max(0.0, (total - s) / total))
    history, best, best_state = [], -1.0, None
    step = 0
    for epoch in range(1, cfg.epochs + 1):
        examples = []
        for t in tasks:
            rows = train_rows[t][:]
            rng.shuffle(rows)
            examples += [(t, r) for r in rows[: cfg.per_task_per_epoch]]
        rng.shuffle(examples)
        # within chunks of 50 batches, sort by length to cut padding; then shuffle the batches
        batches = []
        chunk = cfg.batch_size * 50
        for s in range(0, len(examples), chunk):
            part = sorted(examples[s : s + chunk], key=lambda e: cache.length(e[1]["text"]))
            batches += [part[i : i + cfg.batch_size] for i in range(0, len(part), cfg.batch_size)]
        rng.shuffle(batches)
        t0, run_loss = time.monotonic(), 0.0
        for b, batch in enumerate(batches, 1):
            pooled, owner = forward([r["text"] for _, r in batch], True)
            loss = 0.0
            for t in tasks:
                sel = [i for i, (tt, _) in enumerate(batch) if tt == t]
                if not sel:
                    continue
                mine = torch.isin(owner, torch.tensor(sel))
                renumber = torch.full((len(batch),), -1, dtype=torch.long)
                renumber[torch.tensor(sel)] = torch.arange(len(sel))
                z = _per_text(torch, heads[t](pooled[mine]), renumber[owner[mine]], len(sel), t)
                y = [label_of[t](batch[i][1]) for i in sel]
                if t == "sentiment":
                    loss = loss + loss_fns[t](z, torch.tensor(y)) * len(sel) / len(batch)
                else:
                    loss = loss + loss_fns[t](z[:, 0], torch.tensor(y, dtype=torch.float32)) * len(sel) / len(batch)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(top.parameters()) + list(heads.parameters()), 1.0)
            opt.step()
            sched.step()
            step += 1
            run_loss += float(loss.detach())
            if b % 100 == 0 or b == len(batches):
                rate = b * cfg.batch_size / (time.monotonic() - t0)
                log(f"    epoch {epoch} batch {b}/{len(batches)} loss {run_loss / b:.4f} ({rate:.0f} ex/s)")
        metrics = tune_metrics()
        score = float(np.nanmean(list(metrics.values())))  # a tuning set with one class gives nan
        history.append({"epoch": epoch, "loss": round(run_loss / len(batches), 4), "tune": metrics,
                        "mean": round(score, 4), "seconds": round(time.monotonic() - t0, 1)})
        log(f"  epoch {epoch}: tuning metrics {metrics} (mean {score:.4f})")
        if score > best:
            best = score
            best_state = {}
            for k, layer in enumerate(top):
                best_state.update(layer.export(cfg.frozen_layers + k))
            for t in tasks:
                best_state[f"head.{t}.weight"] = heads[t].weight.detach().numpy().astype(np.float32).copy()
                best_state[f"head.{t}.bias"] = heads[t].bias.detach().numpy().astype(np.float32).copy()
            best_epoch = epoch

    log("3/3 write models/trained/")
    out_dir = models_dir / "trained"
    out_dir.mkdir(exist_ok=True)
    save_file(best_state, str(out_dir / "finetuned.safetensors"),
              metadata={"frozen_layers": str(cfg.frozen_layers), "tasks": ",".join(tasks)})
    info = {
        "config": asdict(cfg),
        "tasks": tasks,
        "kept_epoch": best_epoch,
        "history": history,
        "rows": {t: len(train_rows[t]) for t in tasks},
        "tuning_rows": {t: len(tune_rows[t]) for t in tasks},
        "data": data_hashes(models_dir),
        "torch": torch.__version__,
        "seconds": round(time.monotonic() - t_start, 1),
    }
    (out_dir / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    log(f"done in {info['seconds'] / 60:.1f} min: kept epoch {best_epoch} (tuning mean {best:.4f})")
    return info
