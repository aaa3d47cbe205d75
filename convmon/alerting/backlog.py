"""The channel-backlog incident: when an alert channel's oldest waiting page is too old, a `channel_backlog`
alert goes out through the other channels; it resolves once the backlog has cleared. Plain logic, no Kafka:
agents/delivery.py feeds it the dispatchers' stats on a timer."""

from __future__ import annotations

import uuid

from .model import Alert


def backlog_alert(channel: str, stats: dict, first_seen: float, status: str) -> Alert:
    """A channel_backlog alert for one backlog episode of `channel` (its alert_id is stable within the episode)."""
    pending, oldest = stats.get("pending", 0), stats.get("oldest_s", 0.0)
    summary = (f"alert channel {channel}: {pending} notification(s) waiting, the oldest for {oldest:.0f}s "
               f"(last error: {stats.get('last_error') or 'none'})" if status == "firing"
               else f"alert channel {channel}: backlog delivered")
    return Alert(kind="channel_backlog", severity="critical", summary=summary,
                 dedup_key=f"channel_backlog|channel={channel}", app="convmon",
                 details={"channel": channel, "pending": pending, "oldest_s": oldest}, status=status,
                 alert_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"channel_backlog:{channel}:{first_seen}:{status}")))


class BacklogWatch:
    """Decides when a channel's backlog starts and stops being an incident (plain logic, no Kafka)."""

    def __init__(self, after_s: float):
        self.after_s = after_s
        self.open: dict[str, float] = {}  # channel → when this worker first saw its backlog too old

    def check(self, stats: dict[str, dict], now: float) -> list[Alert]:
        out = []
        for name, s in stats.items():
            old = s.get("pending", 0) > 0 and s.get("oldest_s", 0.0) >= self.after_s
            if old and name not in self.open:
                self.open[name] = now
                out.append(backlog_alert(name, s, now, "firing"))
            elif not s.get("pending", 0) and name in self.open:
                out.append(backlog_alert(name, s, self.open.pop(name), "resolved"))
        return out
