"""What convmon puts on the Faust app, in one typed place: `app.convmon` (a `Wiring`).

agents/app.py builds it; each agent's register() reads the runtime and topics from it and records its
agent and tables there, where the tests and the metrics find them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ..runtime import Runtime


@dataclass
class Topics:
    turns: Any
    dlq: Any
    scores: Any
    alerts: Any
    signals: Any
    feedback: Any
    outboxes: dict[str, Any]  # alert channel name → its outbox topic


@dataclass
class Wiring:
    """Everything convmon puts on the Faust app, in one typed place: `app.convmon`."""

    runtime: Runtime
    topics: Topics
    agents: dict[str, Any] = field(default_factory=dict)  # name → Faust agent (tests drive them by test_context)
    tables: dict[str, Any] = field(default_factory=dict)  # name → Faust table
    model_state: Optional[Any] = None  # state/model_state.ModelState of this worker
    dispatchers: dict[str, Any] = field(default_factory=dict)  # channel name → alerting.delivery.Dispatcher
