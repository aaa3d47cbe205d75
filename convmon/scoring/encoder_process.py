"""The encoder in a child process, so that scoring never waits for the worker's GIL.

Why: with one message per onnxruntime call (SUB_BATCH, for reproducible scores), the scoring
thread takes the GIL back after every call; while the Faust event loop runs Python it waits up
to the switch interval each time. `convmon bench gil` (bench/gil-report.json) on our 2-core
machine: 389 turns/s alone, 122 in the same process as one busy Python thread, 388 in a child
process next to that thread: there it competes for a core, not for the GIL.

Same interface as Encoder (`run(texts) -> outputs`, `run_pieces`); the child holds its own Encoder built
from the same files, so scores are identical. Safe to call from several threads: calls queue for the one
child, so one thread can prepare a batch while the child encodes another. A child that dies (OOM killer) is replaced and
the batch retried once.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Sequence

import numpy as np

from .suite import MAX_TOKENS, SUB_BATCH, Encoder, Pieces

log = logging.getLogger(__name__)

_encoder = None  # the child's Encoder


def _init(model_path: str, tokenizer_path: str, threads: int, max_tokens: int) -> None:
    global _encoder
    _exit_with_parent(os.getppid())
    _encoder = Encoder(Path(model_path), Path(tokenizer_path), threads, max_tokens)


def _exit_with_parent(parent: int) -> None:
    """A worker killed with SIGKILL cannot stop its children: the child notices and exits by itself."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="convmon-parent-watch", daemon=True).start()


def _run(texts: list[str], sub_batch: int) -> dict[str, np.ndarray]:
    return _encoder.run(texts, sub_batch)


def _run_pieces(texts: list[str], sub_batch: int) -> Pieces:
    return _encoder.run_pieces(texts, sub_batch)


def _ready() -> bool:
    return _encoder is not None


class EncoderProcess:
    def __init__(self, model_path: Path, tokenizer_path: Path, threads: int = 1, max_tokens: int = MAX_TOKENS):
        self._args = (str(model_path), str(tokenizer_path), threads, max_tokens)
        self._restarting = threading.Lock()
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        # spawn, not fork: the worker has threads (Kafka client, executors) that a fork would copy mid-state
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_init,
                                   initargs=self._args)
        pool.submit(_ready).result(timeout=120)  # fail here, at start, if the model cannot load
        return pool

    def run(self, texts: Sequence[str], sub_batch: int | None = None) -> dict[str, np.ndarray]:
        return self._call(_run, texts, sub_batch)

    def run_pieces(self, texts: Sequence[str], sub_batch: int | None = None) -> Pieces:
        return self._call(_run_pieces, texts, sub_batch)

    def _call(self, fn, texts: Sequence[str], sub_batch: int | None):
        args = (list(texts), sub_batch or SUB_BATCH)
        pool = self._pool
        try:
            return pool.submit(fn, *args).result()
        except BrokenProcessPool:
            with self._restarting:  # two scoring threads may see the same death: one new process, not two
                if self._pool is pool:
                    log.warning("the scoring process died; starting a new one and retrying the batch")
                    pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = self._start()
            return self._pool.submit(fn, *args).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
