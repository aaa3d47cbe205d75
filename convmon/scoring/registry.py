"""Which scorers the worker runs, built from Settings."""

from __future__ import annotations

from ..config import Settings
from .base import Scorer
from .pii import PiiScorer
from .suite import SuiteScorer

# The scorers convmon has; their FIELDS make up the score record, in this order (scoring/fields.py).
SCORERS = (PiiScorer, SuiteScorer)


def build_scorers(settings: Settings) -> list[Scorer]:
    scorers: list[Scorer] = [PiiScorer(store_raw_text=settings.privacy.store_raw_text)]
    if settings.scoring.models:
        scorers.append(SuiteScorer(settings.scoring.models_dir, threads=settings.worker.scoring_threads,
                                   in_child_process=settings.scoring.child_process))
    return scorers
