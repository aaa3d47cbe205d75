"""On-call channels and the factory that builds them from configuration.

Each spec is a dict with `type`, an optional `name` (default: the type; names must be unique)
and the type's keys. Secrets are never written in the spec: the spec names the environment
variable (`*_env`) and the value is looked up in the `secrets` mapping the caller passes (the
process environment, or a secrets manager); nothing here reads os.environ.

    {"type": "slack", "name": "slack-oncall", "url_env": "CONVMON_SLACK_WEBHOOK_URL"}
    {"type": "pagerduty", "routing_key_env": "CONVMON_PD_ROUTING_KEY", "url"?: ..., "source"?: ...}
    {"type": "webhook", "url_env" | "url": ..., "secret_env": "CONVMON_WEBHOOK_SECRET"}
    {"type": "alertmanager", "url" | "url_env": "http://alertmanager:9093", "generator_url"?: ...,
     "firing_ttl_s"?: float}

Every type also takes `timeout_s` (per HTTP request, default 10).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from convmon.alerting.channels.alertmanager import AlertmanagerChannel
from convmon.alerting.channels.pagerduty import EVENTS_URL, PagerDutyChannel
from convmon.alerting.channels.slack import SlackChannel
from convmon.alerting.channels.webhook import WebhookChannel
from convmon.alerting.model import Channel

__all__ = ["AlertmanagerChannel", "PagerDutyChannel", "SlackChannel", "WebhookChannel", "build_channels"]


class _Spec:
    """Reads one spec, tracking which keys were used so that typos are reported."""

    def __init__(self, spec: Mapping[str, Any], secrets: Mapping[str, str]):
        self.spec, self.secrets = dict(spec), secrets
        self.type = str(self.spec.get("type", ""))
        self.name = str(self.spec.get("name") or self.type)
        self.used = {"type", "name"}

    def get(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        return self.spec.get(key, default)

    def secret(self, key: str, what: str) -> str:
        """The value of the environment variable named by spec[key]."""
        var = self.get(key)
        if not var:
            raise ValueError(f"channel {self.name!r} ({self.type}): {key!r} is required (the name of the "
                             f"environment variable holding the {what})")
        value = self.secrets.get(var, "")
        if not value:
            raise ValueError(f"channel {self.name!r} ({self.type}): environment variable {var} is not set "
                             f"(it should hold the {what})")
        return value

    def url(self, what: str) -> str:
        """A URL given in clear (`url`) or, when it embeds credentials, by env var (`url_env`)."""
        self.used.update(("url", "url_env"))
        if self.spec.get("url_env"):
            return self.secret("url_env", what)
        url = self.get("url")
        if not url:
            raise ValueError(f"channel {self.name!r} ({self.type}): 'url' or 'url_env' is required")
        return str(url)

    def common(self) -> dict[str, Any]:
        return {"timeout_s": float(self.get("timeout_s", 10.0))}

    def check_unused(self) -> None:
        extra = sorted(set(self.spec) - self.used)
        if extra:
            raise ValueError(f"channel {self.name!r} ({self.type}): unknown keys {extra}")


def _slack(s: _Spec) -> Channel:
    if s.spec.get("url"):
        raise ValueError(f"channel {s.name!r} (slack): the webhook URL is a secret; use 'url_env'")
    return SlackChannel(s.name, s.secret("url_env", "Slack incoming-webhook URL"), **s.common())


def _pagerduty(s: _Spec) -> Channel:
    return PagerDutyChannel(s.name, s.secret("routing_key_env", "PagerDuty Events v2 routing key"),
                            url=str(s.get("url") or EVENTS_URL), source=str(s.get("source", "")), **s.common())


def _webhook(s: _Spec) -> Channel:
    return WebhookChannel(s.name, s.url("webhook URL"), s.secret("secret_env", "webhook HMAC secret"), **s.common())


def _alertmanager(s: _Spec) -> Channel:
    ttl = s.get("firing_ttl_s")
    return AlertmanagerChannel(s.name, s.url("Alertmanager base URL"), generator_url=str(s.get("generator_url", "")),
                               firing_ttl_s=float(ttl) if ttl else None, **s.common())


BUILDERS: dict[str, Callable[[_Spec], Channel]] = {
    "slack": _slack, "pagerduty": _pagerduty, "webhook": _webhook, "alertmanager": _alertmanager,
}


def build_channels(specs: list[dict], secrets: Mapping[str, str]) -> list[Channel]:
    """Build channels from config dicts; ValueError (naming the channel and variable) on any problem."""
    channels: list[Channel] = []
    seen: set[str] = set()
    for raw in specs:
        s = _Spec(raw, secrets)
        builder = BUILDERS.get(s.type)
        if builder is None:
            raise ValueError(f"channel {s.name!r}: unknown type {s.type!r} (known: {', '.join(sorted(BUILDERS))})")
        if s.name in seen:
            raise ValueError(f"channel name {s.name!r} is used twice")
        channel = builder(s)
        s.check_unused()
        seen.add(s.name)
        channels.append(channel)
    return channels
