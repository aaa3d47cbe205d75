"""`convmon config check`: report settings that are unsafe for a deployment.

Each finding names the setting, why it matters and what to do. Exit status 1 when any finding
is a risk (`unsafe`), 0 when there are only notes or nothing.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from urllib.parse import urlparse

from .config import Settings
from .redact import mask_text, mask_url

LOCAL = {"127.0.0.1", "localhost", "::1"}


@dataclass
class Finding:
    level: str  # unsafe | note
    setting: str
    message: str

    def __str__(self) -> str:
        return f"{self.level.upper():<6} {self.setting}: {self.message}"


def _hosts(bootstrap: str) -> set[str]:
    return {h.strip().rsplit(":", 1)[0].strip("[]") for h in bootstrap.split(",") if h.strip()}


def check(s: Settings) -> list[Finding]:
    out: list[Finding] = []
    if s.privacy.store_raw_text:
        out.append(Finding("unsafe", "privacy.store_raw_text",
                           "raw chat text (unredacted PII and secrets) is stored in ClickHouse; keep it off unless "
                           "you have a legal basis and access controls"))
    remote_kafka = not _hosts(s.kafka.bootstrap) <= LOCAL
    proto = s.kafka.security_protocol.upper()
    if remote_kafka and proto == "PLAINTEXT":
        out.append(Finding("unsafe", "kafka.security_protocol",
                           f"PLAINTEXT to a remote broker ({mask_text(s.kafka.bootstrap)}): chat text crosses the "
                           "network unencrypted and unauthenticated; use SASL_SSL or SSL"))
    if proto == "SASL_PLAINTEXT":
        out.append(Finding("unsafe", "kafka.security_protocol",
                           "SASL_PLAINTEXT sends credentials and chat text unencrypted; use SASL_SSL"))
    if proto.startswith("SASL") and not (s.kafka.sasl_username and s.kafka.sasl_password):
        out.append(Finding("unsafe", "kafka.sasl_username/sasl_password", "SASL is on but credentials are missing"))
    url = s.clickhouse.url
    if not s.embedded_clickhouse:
        u = urlparse(url)
        if u.username or u.password:
            out.append(Finding("unsafe", "clickhouse.url", "credentials in the URL end up in process lists and "
                               "configs; use clickhouse.username / CONVMON_CLICKHOUSE__PASSWORD"))
        if u.scheme == "http" and u.hostname not in LOCAL:
            out.append(Finding("unsafe", "clickhouse.url", f"plain http to {u.hostname}: use https"))
        if not s.clickhouse.password and not u.password:
            out.append(Finding("unsafe", "clickhouse.password", "no password for the ClickHouse server"))
    elif s.var.exists() and s.var.stat().st_mode & stat.S_IROTH:
        out.append(Finding("note", "var", f"{s.var} is readable by other users; the embedded store holds chat data "
                           "(chmod o-rwx)"))
    for spec in s.alerting.channels:
        name = spec.get("name") or spec.get("type")
        clear = spec.get("url", "") or ""
        # mask_url changes a URL exactly when it carries a password or a secret-named parameter
        secret_url = "token" in clear or "key=" in clear or mask_url(clear) != clear
        if spec.get("type") in ("slack", "pagerduty") or secret_url:
            if clear:
                out.append(Finding("unsafe", f"alerting.channels[{name}].url",
                                   "a secret-bearing URL is written in the config; name an environment variable "
                                   "with url_env instead"))
        if spec.get("type") == "webhook" and not spec.get("secret_env"):
            out.append(Finding("unsafe", f"alerting.channels[{name}]", "webhook without secret_env: receivers "
                               "cannot verify that notifications come from convmon"))
        if clear.startswith("http://") and urlparse(clear).hostname not in LOCAL:
            out.append(Finding("note", f"alerting.channels[{name}].url", "plain http to a remote receiver"))
    if s.alerting.secrets_file and s.alerting.secrets_file.exists():
        if s.alerting.secrets_file.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            out.append(Finding("unsafe", "alerting.secrets_file",
                               f"{s.alerting.secrets_file} is readable by group/others: chmod 600"))
    worker_user = s.clickhouse.username or urlparse(s.clickhouse.url).username or "default"
    if s.grafana.clickhouse_username in (worker_user, "default"):
        out.append(Finding("unsafe", "grafana.clickhouse_username",
                           f"Grafana logs in to ClickHouse as {s.grafana.clickhouse_username!r}, a user that can write: "
                           "anyone who can edit a panel can INSERT, ALTER or DROP. Give Grafana its own readonly user "
                           "with SELECT on convmon's tables (infra/clickhouse/initdb/10-grafana-reader.sh)"))
    if s.privacy.pseudonym_key is None:  # a risk once workers can run on more than one machine
        out.append(Finding("unsafe" if remote_kafka or not s.embedded_clickhouse else "note", "privacy.pseudonym_key",
                           "no pseudonymisation key: conversation ids and user refs are pseudonymised with a key "
                           f"generated in {s.var}/pseudonym.key, which a worker on another machine does not share "
                           "(its pseudonyms would differ, and losing the file loses every lookup); set "
                           "CONVMON_PRIVACY__PSEUDONYM_KEY to the same secret on every worker"))
    if s.topics.dlq_retention_hours is None:
        out.append(Finding("unsafe", "topics.dlq_retention_hours",
                           f"the DLQ ({s.topics.dlq}) keeps raw, unredacted rejected input for the broker's default "
                           "retention (usually 7 days); set a short retention (default 72 h) and limit who may "
                           "read the topic"))
    if s.log_level.lower() == "debug":
        out.append(Finding("note", "log_level", "debug logging is verbose (client libraries may log record "
                           "metadata); use info in production"))
    return out
