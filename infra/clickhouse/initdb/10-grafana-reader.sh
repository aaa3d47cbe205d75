#!/bin/bash
# Grafana's own ClickHouse user, created once when the ClickHouse container initialises an empty
# data volume (docker-entrypoint-initdb.d). Least privilege: readonly (no INSERT, ALTER, DROP, no
# settings changes except the query timeout the plugin sets) and SELECT on the tables the convmon
# dashboards read, nothing else: not model_state_snapshots, not schema_migrations. The worker and
# `convmon db migrate` use CLICKHOUSE_USER; Grafana never does.
# The password is sent as its sha256, so any character is safe in it.
set -euo pipefail
hash=$(printf '%s' "${GRAFANA_CLICKHOUSE_PASSWORD:?set GRAFANA_CLICKHOUSE_PASSWORD}" | sha256sum | cut -d' ' -f1)
clickhouse client --user "$CLICKHOUSE_USER" --password "$CLICKHOUSE_PASSWORD" --multiquery <<SQL
CREATE USER IF NOT EXISTS ${GRAFANA_CLICKHOUSE_USER:-grafana} IDENTIFIED WITH sha256_hash BY '${hash}'
    DEFAULT DATABASE convmon SETTINGS readonly = 1, max_execution_time CHANGEABLE_IN_READONLY;
GRANT SELECT ON convmon.turns TO ${GRAFANA_CLICKHOUSE_USER:-grafana};
GRANT SELECT ON convmon.alerts TO ${GRAFANA_CLICKHOUSE_USER:-grafana};
GRANT SELECT ON convmon.window_stats TO ${GRAFANA_CLICKHOUSE_USER:-grafana};
GRANT SELECT ON convmon.drift_reports TO ${GRAFANA_CLICKHOUSE_USER:-grafana};
GRANT SELECT ON convmon.drift_baselines TO ${GRAFANA_CLICKHOUSE_USER:-grafana};
GRANT SELECT ON convmon.dead_letters TO ${GRAFANA_CLICKHOUSE_USER:-grafana};
SQL
