"""What the worker's stages share, built once per worker process from Settings: the score stage (decode,
protect, score), the ClickHouse sink, the alert rules, the suite's decision thresholds, the metrics."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional

from .alerting.rules import RuleSet
from .batch import BatchProcessor
from .config import Settings
from .ingest import TurnDecoder
from .metrics import Metrics
from .privacy import Protector
from .scoring.pipeline import ScoringPipeline
from .scoring.registry import build_scorers
from .scoring.suite import SuiteScorer
from .store.sink import StoreSink


@dataclass
class Runtime:
    """What the agents need, built once per worker process."""

    settings: Settings
    processor: BatchProcessor
    sink: StoreSink
    score_executor: ThreadPoolExecutor
    rules: RuleSet
    thresholds: dict
    policy_thresholds: dict
    metrics: Metrics


def scoring_executor_threads(settings: Settings) -> int:
    """With the encoder in a child process, one more thread than the encoder has: it prepares the next batch and
    finishes the last one while the child encodes (agents/turns.py keeps up to three batches in flight)."""
    return settings.worker.scoring_threads + (1 if settings.scoring.models and settings.scoring.child_process else 0)


def build_runtime(settings: Settings, sink: Optional[StoreSink] = None) -> Runtime:
    scorers = build_scorers(settings)
    pipeline = ScoringPipeline(scorers)
    # rekey: a turn without a Kafka key goes back to chat.turns keyed by conversation_id (its dynamics live
    # with the partition of its conversation: agents/turns.py)
    processor = BatchProcessor(TurnDecoder.from_settings(settings.worker), pipeline, Protector.from_settings(settings),
                               rekey=True)
    suite = next((s for s in scorers if isinstance(s, SuiteScorer)), None)
    return Runtime(
        rules=RuleSet.load(settings.alerting.rules_file),
        metrics=Metrics(),
        thresholds=suite.model.thresholds if suite else {},
        policy_thresholds=suite.model.policy_thresholds if suite else {},
        settings=settings,
        processor=processor,
        sink=sink if sink is not None else StoreSink.from_settings(settings),
        score_executor=ThreadPoolExecutor(scoring_executor_threads(settings), thread_name_prefix="convmon-score"),
    )
