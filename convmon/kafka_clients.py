"""One translation of `Settings.kafka` (address, TLS, SASL) for every Kafka client convmon makes.

kafka-python clients (topic admin, `convmon produce`, the demo's readers) take `client_config()`;
aiokafka (the outbox's own consumer) takes `aiokafka_config()`, the same with an SSL context; Faust
takes `faust_credentials()`. A cluster the worker can reach is reached the same way by every command.
"""

from __future__ import annotations

import ssl

from .config import KafkaSettings


def client_config(k: KafkaSettings) -> dict:
    """Keyword arguments for kafka-python's KafkaProducer, KafkaConsumer and KafkaAdminClient."""
    cfg: dict = {"bootstrap_servers": [h.strip() for h in k.bootstrap.split(",") if h.strip()],
                 "security_protocol": k.security_protocol.upper()}
    if k.sasl_mechanism:
        cfg["sasl_mechanism"] = k.sasl_mechanism.upper()
    if k.sasl_username:
        cfg["sasl_plain_username"] = k.sasl_username
    if k.sasl_password:
        cfg["sasl_plain_password"] = k.sasl_password.get_secret_value()
    if k.ssl_cafile:
        cfg["ssl_cafile"] = str(k.ssl_cafile)
    return cfg


def aiokafka_config(k: KafkaSettings) -> dict:
    """client_config for an aiokafka client: aiokafka takes an SSL context instead of a CA file."""
    cfg = client_config(k)
    cafile = cfg.pop("ssl_cafile", None)
    if "SSL" in cfg["security_protocol"]:
        cfg["ssl_context"] = ssl.create_default_context(cafile=cafile)
    return cfg


def faust_credentials(k: KafkaSettings):
    """Faust's broker_credentials for the same settings (None for PLAINTEXT)."""
    import faust
    from faust.types.auth import AuthProtocol

    cfg = aiokafka_config(k)
    proto = cfg["security_protocol"]
    if proto == "PLAINTEXT":
        return None
    ctx = cfg.get("ssl_context")
    if proto == "SSL":
        return faust.SSLCredentials(ctx)
    if proto in ("SASL_PLAINTEXT", "SASL_SSL"):
        sasl = dict(username=cfg.get("sasl_plain_username"), password=cfg.get("sasl_plain_password", ""),
                    ssl_context=ctx,
                    security_protocol=AuthProtocol.SASL_SSL if proto == "SASL_SSL" else AuthProtocol.SASL_PLAINTEXT)
        mech = cfg.get("sasl_mechanism", "PLAIN")
        if mech.startswith("SCRAM"):
            return faust.SASLCredentials(mechanism=mech, **sasl)
        return faust.SASLCredentials(**sasl)
    raise ValueError(f"kafka.security_protocol {k.security_protocol!r} is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, "
                     "SASL_SSL")
