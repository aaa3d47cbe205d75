"""The consumer_stalled incident: a partition that neither a re-read nor a consumer-group rejoin got moving
(stream/offsets.py StallWatch "escalate") pages on-call instead of rebalancing the group in a loop; it
resolves when the partition moves again. Plain logic, no Kafka: stream/watchdog.py sends it to chat.alerts."""

from __future__ import annotations

import uuid
from typing import Optional

from .model import Alert


def stalled_alert(group: str, topic: str, partition: int, position: int, highwater: int, committed: Optional[int],
                  stalled_s: float, first_seen: float, status: str) -> Alert:
    """A consumer_stalled alert for one stall episode of a partition (its alert_id is stable within the episode)."""
    where = f"{topic}/{partition}"
    summary = (f"consumer group {group}: partition {where} stalled at offset {position} of {highwater} "
               f"(committed {committed}) for {stalled_s:.0f}s; a re-read and a group rejoin did not move it. "
               "Restart the worker that owns it; its log names the partition" if status == "firing"
               else f"consumer group {group}: partition {where} moves again")
    return Alert(kind="consumer_stalled", severity="critical", summary=summary,
                 dedup_key=f"consumer_stalled|group={group}|partition={where}", app="convmon",
                 details={"group": group, "topic": topic, "partition": partition, "position": position,
                          "highwater": highwater, "committed": committed, "stalled_s": round(stalled_s, 1)},
                 status=status,
                 alert_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"consumer_stalled:{group}:{where}:{first_seen}:{status}")))
