"""convmon — a streaming monitor for LLM chat (Kafka → Faust → ClickHouse)."""

__version__ = "0.1.0"
