"""Per-conversation abrupt-shift detection (plain Python: the Faust agent only stores the state).

One `ConversationState` per conversation (a Faust table value: plain JSON types, bounded size)
and one pure step function, `ShiftDetector(config).update(state, turn) -> (state, event|None)`.

Each scored turn is reduced to one *level*:

    level = sentiment - tox_weight * max(0, toxicity - tox_floor)

(sentiment in [-1, 1] is p(positive) - p(negative); toxicity below `tox_floor` is ignored
because the toxicity head scores ordinary messages up to ~0.3-0.5). The baseline is an
exponentially weighted mean/variance of the earlier levels of the *same role* (a hostile
assistant turn is compared with earlier assistant turns, an angry user turn with earlier user
turns), or of all earlier turns while that role has fewer than `min_role_prior` turns. A turn
fires when

  * the conversation has at least `min_prior_turns` earlier turns, and no shift fired in the
    last `cooldown_turns` turns;
  * the turn is clearly negative in absolute terms (`level <= max_after_level`), so a drop
    from very positive to neutral never fires;
  * the drop below the baseline exceeds both `min_drop` and `k_sigma` times the baseline's
    spread (EW std, floored at `min_sd`): noisy conversations need bigger drops;
  * and it is new: at least `novelty_margin` below the lowest level this role has already
    produced in the conversation (a steadily negative conversation has been there before);

or, on the toxicity path, when toxicity itself jumps (`>= tox_abs` and `>= tox_jump` above the
role's EW toxicity) on a turn whose sentiment is not positive.

Because the baseline is an EW mean, a slow decline drags the baseline down with it and each
step stays below `min_drop`; a calm, factual conversation about a sad topic is scored neutral
by the sentiment head and never reaches `max_after_level`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, Mapping, Optional, Union

ROLES = ("user", "assistant")
STATE_VERSION = 1

TsLike = Union[str, float, int, datetime, None]


@dataclass(frozen=True)
class ShiftConfig:
    """Detector parameters. Defaults tuned on models/data/conversations/sample.jsonl only."""

    tox_floor: float = 0.3  # toxicity below this is noise for the level
    tox_weight: float = 1.0  # level = sentiment - tox_weight * max(0, toxicity - tox_floor)
    alpha: float = 0.4  # EW weight of the newest turn in the baseline (mean and variance)
    min_prior_turns: int = 2  # earlier turns (both roles) needed before anything can fire
    min_role_prior: int = 2  # earlier same-role turns needed to use the per-role baseline
    # a user turn must itself be at least this negative. Re-tuned on sample.jsonl (only) for the
    # suite trained on public data, whose sentiment head scores clear negatives near -1: -0.55 → -0.9
    max_after_level: float = -0.9
    # ... and an assistant turn this negative: the sentiment head scores condolences and bad
    # news from the assistant as negative (labelling convention), so sympathy must not fire
    assistant_max_after_level: float = -0.85
    min_drop: float = 0.6  # baseline - level must exceed this ...
    k_sigma: float = 2.0  # ... and k_sigma * baseline spread
    min_sd: float = 0.15  # floor of the baseline spread (few turns give no variance estimate)
    novelty_margin: float = 0.25  # level must be this far below the role's lowest earlier level
    tox_abs: float = 0.5  # toxicity path: toxicity at least this ...
    tox_jump: float = 0.35  # ... and this far above the role's EW toxicity ...
    tox_max_sentiment: float = -0.25  # ... on a turn whose sentiment is negative too
    cooldown_turns: int = 6  # after firing, stay quiet for this many turn indices
    window: int = 8  # recent turns kept in the state (bounded size)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ShiftConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown shift-detector parameters: {sorted(unknown)}")
        return cls(**dict(d))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ShiftEvent:
    """A conversation turned sharply negative at `turn_index`."""

    conversation_id: str
    turn_index: int
    role: str
    before: float  # baseline level (EW mean of the earlier turns compared with)
    after: float  # level of the firing turn
    delta: float  # before - after (> 0)
    reason: str  # "sentiment_drop", "toxicity_jump" or "sentiment_drop+toxicity_jump"
    sentiment: float = 0.0
    toxicity: float = 0.0
    baseline_toxicity: float = 0.0
    baseline_sd: float = 0.0
    baseline_role: str = ""  # the role whose turns formed the baseline, or "all"
    ts: Optional[float] = None  # epoch seconds of the turn, when it had one

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ts_to_epoch(ts: TsLike) -> Optional[float]:
    if ts is None:
        return None
    if isinstance(ts, datetime):
        dt = ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)
        return dt.timestamp()
    if isinstance(ts, (int, float)):
        return float(ts)
    if isinstance(ts, str):
        from ..contract import parse_ts

        return parse_ts(ts).timestamp()
    raise TypeError(f"unsupported timestamp {ts!r}")


def _new_stats() -> dict[str, float]:
    # n: turns seen; mean/var: EW level; tox: EW toxicity; min: lowest level seen
    return {"n": 0, "mean": 0.0, "var": 0.0, "tox": 0.0, "min": 0.0}


def _push(stats: dict[str, Any], level: float, tox: float, alpha: float) -> None:
    if stats["n"] == 0:
        stats.update(n=1, mean=level, var=0.0, tox=tox, min=level)
        return
    diff = level - stats["mean"]
    incr = alpha * diff
    stats["mean"] = stats["mean"] + incr
    stats["var"] = (1.0 - alpha) * (stats["var"] + diff * incr)  # EW variance (West 1979 form)
    stats["tox"] = stats["tox"] + alpha * (tox - stats["tox"])
    stats["min"] = min(stats["min"], level)
    stats["n"] = stats["n"] + 1


@dataclass
class ConversationState:
    """Everything the detector remembers about one conversation. JSON types only, bounded size."""

    conversation_id: str = ""
    last_turn_index: int = -1
    last_ts: Optional[float] = None  # epoch seconds of the newest turn (None: turns had no ts)
    n_turns: int = 0
    # the last `window` turns, oldest first: [turn_index, role, sentiment, toxicity]
    recent: list[list[Any]] = field(default_factory=list)
    # EW statistics of the level per role and for all turns ("all")
    stats: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {"user": _new_stats(), "assistant": _new_stats(), "all": _new_stats()}
    )
    fired: bool = False  # has this conversation ever fired
    fire_count: int = 0
    last_fired_turn: Optional[int] = None
    cooldown_until: int = -1  # turns with turn_index <= this do not fire
    version: int = STATE_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "last_turn_index": self.last_turn_index,
            "last_ts": self.last_ts,
            "n_turns": self.n_turns,
            "recent": [list(r) for r in self.recent],
            "stats": {k: dict(v) for k, v in self.stats.items()},
            "fired": self.fired,
            "fire_count": self.fire_count,
            "last_fired_turn": self.last_fired_turn,
            "cooldown_until": self.cooldown_until,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ConversationState":
        stats = {k: _new_stats() for k in (*ROLES, "all")}
        for k, v in (d.get("stats") or {}).items():
            if k in stats:
                stats[k].update({kk: v[kk] for kk in stats[k] if kk in v})
        return cls(
            conversation_id=str(d.get("conversation_id", "")),
            last_turn_index=int(d.get("last_turn_index", -1)),
            last_ts=None if d.get("last_ts") is None else float(d["last_ts"]),
            n_turns=int(d.get("n_turns", 0)),
            recent=[list(r) for r in d.get("recent", [])],
            stats=stats,
            fired=bool(d.get("fired", False)),
            fire_count=int(d.get("fire_count", 0)),
            last_fired_turn=None if d.get("last_fired_turn") is None else int(d["last_fired_turn"]),
            cooldown_until=int(d.get("cooldown_until", -1)),
            version=int(d.get("version", STATE_VERSION)),
        )

    def copy(self) -> "ConversationState":
        return ConversationState.from_dict(self.to_dict())


def expired(state: ConversationState, now: TsLike, ttl_s: float) -> bool:
    """True when the conversation has been inactive for more than `ttl_s` seconds at `now`.

    A state that never saw a timestamped turn is not expired by time (nothing to compare with).
    """
    if state.last_ts is None:
        return False
    now_s = _ts_to_epoch(now)
    if now_s is None:
        return False
    return now_s - state.last_ts > ttl_s


class ShiftDetector:
    """`update(state, turn) -> (new_state, ShiftEvent | None)`; the input state is not modified."""

    def __init__(self, config: Optional[ShiftConfig] = None):
        self.config = config or ShiftConfig()

    def level(self, sentiment: float, toxicity: float) -> float:
        c = self.config
        return float(sentiment) - c.tox_weight * max(0.0, float(toxicity) - c.tox_floor)

    def update(
        self, state: Optional[ConversationState], turn: Mapping[str, Any]
    ) -> tuple[ConversationState, Optional[ShiftEvent]]:
        c = self.config
        cid = str(turn["conversation_id"])
        idx = int(turn["turn_index"])
        role = str(turn["role"])
        sent = float(turn["sentiment"])
        tox = float(turn["toxicity"])
        ts = _ts_to_epoch(turn.get("ts"))

        new = ConversationState(conversation_id=cid) if state is None else state.copy()
        if not new.conversation_id:
            new.conversation_id = cid
        if idx <= new.last_turn_index:
            # replayed or out-of-order turn (at-least-once delivery): ignore, stay idempotent
            return new, None

        level = self.level(sent, tox)
        event = None
        if role in ROLES:
            event = self._check(new, cid, idx, role, sent, tox, level, ts)
            _push(new.stats[role], level, tox, c.alpha)
        _push(new.stats["all"], level, tox, c.alpha)

        new.last_turn_index = idx
        if ts is not None:
            new.last_ts = ts if new.last_ts is None else max(new.last_ts, ts)
        new.n_turns += 1
        new.recent.append([idx, role, round(sent, 4), round(tox, 4)])
        del new.recent[: max(0, len(new.recent) - c.window)]
        if event is not None:
            new.fired = True
            new.fire_count += 1
            new.last_fired_turn = idx
            new.cooldown_until = idx + c.cooldown_turns
        return new, event

    def _check(
        self,
        st: ConversationState,
        cid: str,
        idx: int,
        role: str,
        sent: float,
        tox: float,
        level: float,
        ts: Optional[float],
    ) -> Optional[ShiftEvent]:
        c = self.config
        if st.stats["all"]["n"] < c.min_prior_turns or idx <= st.cooldown_until:
            return None
        own = st.stats[role]
        base_role = role if own["n"] >= c.min_role_prior else "all"
        base = st.stats[base_role]
        sd = max(math.sqrt(max(base["var"], 0.0)), c.min_sd)
        delta = base["mean"] - level
        # lowest level this role (or, with too few turns of its own, the conversation) produced
        floor_stats = own if own["n"] >= 1 else st.stats["all"]
        novel = level <= floor_stats["min"] - c.novelty_margin

        max_after = c.assistant_max_after_level if role == "assistant" else c.max_after_level
        drop = (
            level <= max_after
            and delta >= c.min_drop
            and delta >= c.k_sigma * sd
            and novel
        )
        tox_base = base["tox"]
        jump = tox >= c.tox_abs and tox - tox_base >= c.tox_jump and sent <= c.tox_max_sentiment
        if not (drop or jump):
            return None
        reason = "+".join(r for r, ok in (("sentiment_drop", drop), ("toxicity_jump", jump)) if ok)
        return ShiftEvent(
            conversation_id=cid,
            turn_index=idx,
            role=role,
            before=round(base["mean"], 4),
            after=round(level, 4),
            delta=round(delta, 4),
            reason=reason,
            sentiment=round(sent, 4),
            toxicity=round(tox, 4),
            baseline_toxicity=round(tox_base, 4),
            baseline_sd=round(sd, 4),
            baseline_role=base_role,
            ts=ts,
        )


def run_conversation(
    detector: ShiftDetector, turns: list[Mapping[str, Any]], state: Optional[ConversationState] = None
) -> tuple[ConversationState, list[ShiftEvent]]:
    """Feed one conversation's turns in order; returns the final state and every event."""
    events = []
    for t in sorted(turns, key=lambda t: int(t["turn_index"])):
        state, ev = detector.update(state, t)
        if ev is not None:
            events.append(ev)
    assert state is not None or not turns
    return state if state is not None else ConversationState(), events


class ConversationTracker:
    """The dynamics stage, run on each scored batch (`track`): the conversations' new stored values and, on a
    shift, a `sentiment_shift` alert candidate. Stored values are `ConversationState.to_dict()` plus the
    partition that owns them (`_partition`), so each partition can expire its own conversations."""

    def __init__(self, detector: ShiftDetector, rules, ttl_s: float):
        self.detector, self.rules, self.ttl_s = detector, rules, ttl_s

    def update(self, stored: Optional[dict], event: Mapping[str, Any], partition: int):
        """(value to store, or None if unchanged; alert or None; the shift or None)."""
        state = ConversationState.from_dict(stored) if stored else None
        new_state, shift = self.detector.update(state, event)
        value = {**new_state.to_dict(), "_partition": partition}
        return (None if value == stored else value), (self._alert(event, shift) if shift else None), shift

    def track(self, scored, stored) -> tuple[dict[str, tuple[dict, tuple[int, int]]], list]:
        """A scored batch (pipeline.ScoredTurn, in offset order) → (conversation → (value to store, (partition,
        offset) of the turn that last changed it), sentiment_shift alert candidates). `stored(cid)` reads the
        table; a conversation changed earlier in the batch continues from that change."""
        changes: dict[str, tuple[dict, tuple[int, int]]] = {}
        alerts = []
        for s in scored:
            f, t = s.scores, s.turn
            if f.get("sentiment") is None or f.get("toxicity") is None:
                continue  # model suite disabled: nothing to track
            if f.get("language_supported") is False:
                continue  # a language the suite does not judge: its sentiment is a guess, no shift is decided on it
            cid = t.conversation_id
            event = {"conversation_id": cid, "turn_index": t.turn_index, "role": t.role, "ts": t.ts, "app": t.app,
                     "model": {"name": t.model.name, "version": t.model.version},
                     "sentiment": f["sentiment"], "toxicity": f["toxicity"]}
            value, alert, _ = self.update(changes[cid][0] if cid in changes else stored(cid), event, s.partition)
            if value is not None:
                changes[cid] = (value, (s.partition, s.offset))
            if alert is not None:
                alerts.append(alert)
        return changes, alerts

    def stale(self, items, partition: int, now: float) -> list[str]:
        """Conversations of `partition` idle for longer than ttl_s."""
        return [cid for cid, raw in items if raw and raw.get("_partition") == partition
                and expired(ConversationState.from_dict(raw), now, self.ttl_s)]

    def _alert(self, s: Mapping[str, Any], shift: ShiftEvent):
        cid = s["conversation_id"]
        ctx = {"app": s["app"], "model_name": s["model"]["name"], "model_version": s["model"]["version"],
               "role": shift.role, "conversation_id": cid, "turn_index": shift.turn_index}
        summary = (f"conversation {cid} turned sharply negative at turn {shift.turn_index} ({shift.role}): "
                   f"level {shift.before:+.2f} → {shift.after:+.2f} ({shift.reason})")
        return self.rules.make_alert("sentiment_shift", ctx, summary, shift.to_dict(),
                                     source_id=f"{cid}:{shift.turn_index}")
