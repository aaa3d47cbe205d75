#!/usr/bin/env bash
# Local single-node Apache Kafka broker (KRaft, no Docker, no ZooKeeper) for
# convmon development and CI.
#
#   kafka.sh fetch    download the broker jars into the cache (once per version)
#   kafka.sh up       fetch if needed, format storage once, start, wait until ready
#   kafka.sh down     stop the broker (SIGTERM, then SIGKILL after 30 s)
#   kafka.sh status   "running pid=... bootstrap=..." (exit 0) or "stopped" (exit 3)
#   kafka.sh logs     tail the server log (extra args go to tail, e.g. `logs -f`)
#
# Environment (see README.md):
#   KAFKA_VERSION              broker version (default below; must exist on Maven Central)
#   CONVMON_KAFKA_CACHE        jar cache (default ~/.cache/convmon/kafka-$KAFKA_VERSION)
#   CONVMON_VAR                runtime data root (default <repo>/var, or ./var for an installed
#                              copy); broker files in $CONVMON_VAR/kafka
#   CONVMON_KAFKA_PORT         client port on 127.0.0.1 (default: the port of a local
#                              CONVMON_KAFKA_BOOTSTRAP, else 9092); the controller uses PORT+10000 (19092), away
#                              from Alertmanager's 9093 and other common ports
#   CONVMON_KAFKA_PARTITIONS   num.partitions for auto-created topics (default 4)
#   CONVMON_KAFKA_START_TIMEOUT  seconds `up` waits for the broker (default 90)
#   KAFKA_HOME                 use $KAFKA_HOME/libs/*.jar instead of fetching
#   KAFKA_HEAP_OPTS            JVM heap flags (default -Xms256m -Xmx512m)
#   JAVA_HOME                  Java 17+ to use (default: java on PATH)
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.1.2}"

# Physical paths (an installed copy lives in site-packages/convmon/_data/infra/kafka/).
SCRIPT_DIR="$(cd -P "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
REPO_ROOT="$(cd -P "$SCRIPT_DIR/../.." && pwd -P)"

CACHE="${CONVMON_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/convmon/kafka-$KAFKA_VERSION}"
if [[ -n "${CONVMON_VAR:-}" ]]; then
    VAR="$CONVMON_VAR"
elif [[ -f "$REPO_ROOT/pyproject.toml" || -e "$REPO_ROOT/.git" ]]; then
    VAR="$REPO_ROOT/var"          # running from a checkout
else
    VAR="$PWD/var"                # installed copy (site-packages): like convmon's own default
fi
# Absolute: it goes into server.properties, which also identifies our broker process.
[[ "$VAR" == /* ]] || VAR="$PWD/$VAR"
KDIR="$VAR/kafka"
DATA_DIR="$KDIR/data"
LOG_DIR="$KDIR/logs"
CONFIG="$KDIR/server.properties"
PID_FILE="$KDIR/kafka.pid"
SERVER_LOG="$LOG_DIR/server.log"
OUT_LOG="$LOG_DIR/kafka.out"

# The port: CONVMON_KAFKA_PORT, else the one in a local CONVMON_KAFKA_BOOTSTRAP (so that a caller that runs
# this script directly, like the test session, agrees with `convmon kafka up`), else 9092.
if [[ -z "${CONVMON_KAFKA_PORT:-}" && "${CONVMON_KAFKA_BOOTSTRAP:-}" =~ ^(127\.0\.0\.1|localhost):([0-9]+)$ ]]; then
    PORT="${BASH_REMATCH[2]}"
else
    PORT="${CONVMON_KAFKA_PORT:-9092}"
fi
CONTROLLER_PORT=$((PORT + 10000)); [ "$CONTROLLER_PORT" -le 65535 ] || CONTROLLER_PORT=$((PORT - 10000))
HOST=127.0.0.1
BOOTSTRAP="$HOST:$PORT"
PARTITIONS="${CONVMON_KAFKA_PARTITIONS:-4}"
START_TIMEOUT="${CONVMON_KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT=30
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"

JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"

log() { printf 'kafka: %s\n' "$*" >&2; }
now_ms() { date +%s%3N; }
since() { local ms=$(($(now_ms) - $1)); printf '%d.%01d s' $((ms / 1000)) $((ms % 1000 / 100)); }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- jars

# Directory holding the broker jars: $KAFKA_HOME/libs if usable, else the cache.
lib_dir() {
    if [[ -n "${KAFKA_HOME:-}" && -d "$KAFKA_HOME/libs" ]]; then
        printf '%s\n' "$KAFKA_HOME/libs"
    else
        printf '%s\n' "$CACHE/lib"
    fi
}

# The cache is complete when its marker names this version and this pom.
fetch_stamp() {
    printf 'kafka %s pom %s\n' "$KAFKA_VERSION" "$(sha256sum "$SCRIPT_DIR/pom.xml" | cut -d' ' -f1)"
}

cache_complete() {
    [[ -f "$CACHE/.complete" && "$(cat "$CACHE/.complete")" == "$(fetch_stamp)" ]]
}

cmd_fetch() {
    if [[ -n "${KAFKA_HOME:-}" && -d "$KAFKA_HOME/libs" ]]; then
        log "using KAFKA_HOME=$KAFKA_HOME (nothing to fetch)"
        return 0
    fi
    if cache_complete; then
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found: install Maven, or set KAFKA_HOME to an unpacked Kafka distribution"
    mkdir -p "$CACHE"
    exec 8>"$CACHE/.lock"
    flock 8
    cache_complete && return 0   # another process fetched while we waited
    log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $CACHE"
    local tmp="$CACHE/lib.tmp.$$" t0
    t0=$(now_ms)
    rm -rf "$tmp"
    if ! mvn -B -Dstyle.color=never -f "$SCRIPT_DIR/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
            dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" \
            >"$CACHE/fetch.log" 2>&1; then
        rm -rf "$tmp"
        grep -E '^\[ERROR\] (Failed|Could not|Non-resolvable)' "$CACHE/fetch.log" | head -n 5 >&2 || true
        log "full Maven output: $CACHE/fetch.log"
        die "mvn could not fetch Kafka $KAFKA_VERSION (no network? set KAFKA_HOME to use a local distribution)"
    fi
    [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || { rm -rf "$tmp"; die "fetch finished but kafka_2.13-$KAFKA_VERSION.jar is missing"; }
    rm -rf "${CACHE:?}/lib"
    mv "$tmp" "$CACHE/lib"
    fetch_stamp >"$CACHE/.complete"
    local jars=("$CACHE"/lib/*.jar)
    log "fetched ${#jars[@]} jars in $(since "$t0")"
}

# Run a Kafka CLI class quietly (warnings to stderr).
kafka_tool() {
    "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -Dlog4j2.configurationFile="$SCRIPT_DIR/tools-log4j2.properties" \
        -cp "$(lib_dir)/*" "$@"
}

# ---------------------------------------------------------------- process state

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

# True if pid $1 is a live broker started from our server.properties.
is_our_broker() {
    local pid="$1" cmdline
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ "$cmdline" == *kafka.Kafka* && "$cmdline" == *"$CONFIG"* ]]
}

# Print the pid of our running broker, or nothing. Falls back to scanning
# /proc in case the pid file was lost.
broker_pid() {
    local pid=""
    if [[ -f "$PID_FILE" ]]; then
        pid="$(cat "$PID_FILE" 2>/dev/null || true)"
        if is_our_broker "$pid"; then
            printf '%s\n' "$pid"
            return 0
        fi
    fi
    local p
    for p in /proc/[0-9]*; do
        p="${p#/proc/}"
        if is_our_broker "$p"; then
            printf '%s\n' "$p"
            return 0
        fi
    done
    return 0
}

# ---------------------------------------------------------------- up

write_config() {
    cat >"$CONFIG" <<EOF
# Generated by infra/kafka/kafka.sh; rewritten on every \`up\`.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DATA_DIR
num.partitions=$PARTITIONS
default.replication.factor=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
log.retention.hours=168
log.segment.bytes=104857600
EOF
}

format_storage() {
    if [[ -f "$DATA_DIR/meta.properties" ]]; then
        return 0
    fi
    local cluster_id
    if [[ -s "$KDIR/cluster.id" ]]; then
        cluster_id="$(cat "$KDIR/cluster.id")"
    else
        cluster_id="$(kafka_tool kafka.tools.StorageTool random-uuid | tail -n1)"
        [[ -n "$cluster_id" ]] || die "could not generate a cluster id"
        printf '%s\n' "$cluster_id" >"$KDIR/cluster.id"
    fi
    log "formatting storage in $DATA_DIR (cluster id $cluster_id)"
    kafka_tool kafka.tools.StorageTool format -t "$cluster_id" -c "$CONFIG" >"$LOG_DIR/format.out" 2>&1 \
        || { cat "$LOG_DIR/format.out" >&2; die "storage format failed"; }
}

# A real Kafka request: ApiVersions against the broker.
broker_answers() {
    kafka_tool org.apache.kafka.tools.BrokerApiVersionsCommand --bootstrap-server "$BOOTSTRAP" \
        >/dev/null 2>&1
}

cmd_up() {
    mkdir -p "$KDIR" "$LOG_DIR" "$DATA_DIR"
    exec 9>"$KDIR/.lock"
    flock 9

    local pid
    pid="$(broker_pid)"
    if [[ -n "$pid" ]]; then
        printf '%s\n' "$pid" >"$PID_FILE"
        if port_open "$PORT"; then
            log "already running pid=$pid bootstrap=$BOOTSTRAP"
            return 0
        fi
        log "broker pid=$pid is running but not answering on $BOOTSTRAP; waiting for it"
    else
        rm -f "$PID_FILE"
        local p
        for p in "$PORT" "$CONTROLLER_PORT"; do
            if port_open "$p"; then
                die "port $HOST:$p is already in use by another process (not this broker); stop it, or run the local broker on another port: CONVMON_KAFKA_BOOTSTRAP=127.0.0.1:<free port> convmon kafka up (and the same CONVMON_KAFKA_BOOTSTRAP for every convmon command)"
            fi
        done

        cmd_fetch
        local lib
        lib="$(lib_dir)"
        compgen -G "$lib/kafka_2.13-*.jar" >/dev/null || die "no kafka_2.13 jar in $lib"
        command -v "$JAVA" >/dev/null || die "java not found (Java 17+ needed; set JAVA_HOME)"

        write_config
        format_storage

        log "starting Kafka $KAFKA_VERSION on $BOOTSTRAP (data $KDIR)"
        # shellcheck disable=SC2086  # HEAP_OPTS is a list of flags
        nohup "$JAVA" $HEAP_OPTS -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError \
            -Djava.awt.headless=true \
            -Dkafka.logs.dir="$LOG_DIR" \
            -Dlog4j2.configurationFile="$SCRIPT_DIR/log4j2.properties" \
            -cp "$lib/*" kafka.Kafka "$CONFIG" \
            </dev/null >>"$OUT_LOG" 2>&1 8>&- 9>&- &
        pid=$!
        printf '%s\n' "$pid" >"$PID_FILE"
    fi

    local started=$SECONDS t0
    t0=$(now_ms)
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PID_FILE"
            tail -n 20 "$SERVER_LOG" "$OUT_LOG" >&2 2>/dev/null || true
            die "broker exited during startup; see $SERVER_LOG and $OUT_LOG"
        fi
        if port_open "$PORT" && broker_answers; then
            break
        fi
        if ((SECONDS - started >= START_TIMEOUT)); then
            log "broker pid=$pid did not answer on $BOOTSTRAP within ${START_TIMEOUT}s; stopping it"
            stop_pid "$pid"
            die "broker did not come up; see $SERVER_LOG (raise CONVMON_KAFKA_START_TIMEOUT if the machine is just slow)"
        fi
        sleep 0.5
    done
    log "ready in $(since "$t0"): pid=$pid bootstrap=$BOOTSTRAP"
}

# ---------------------------------------------------------------- down / status / logs

# SIGTERM pid $1, wait up to STOP_TIMEOUT for a clean exit, then SIGKILL.
stop_pid() {
    local pid="$1" started=$SECONDS t0
    t0=$(now_ms)
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS - started >= STOP_TIMEOUT)); then
            log "pid=$pid still alive after ${STOP_TIMEOUT}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            break
        fi
        sleep 0.2
    done
    rm -f "$PID_FILE"
    log "stopped in $(since "$t0")"
}

cmd_down() {
    if [[ ! -d "$KDIR" ]]; then
        log "not running"
        return 0
    fi
    exec 9>"$KDIR/.lock"
    flock 9
    local pid
    pid="$(broker_pid)"
    if [[ -z "$pid" ]]; then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    log "stopping pid=$pid"
    stop_pid "$pid"
}

cmd_status() {
    local pid
    pid="$(broker_pid)"
    if [[ -n "$pid" ]]; then
        printf 'running pid=%s bootstrap=%s\n' "$pid" "$BOOTSTRAP"
        exit 0
    fi
    printf 'stopped\n'
    exit 3
}

cmd_logs() {
    [[ -f "$SERVER_LOG" ]] || die "no log yet at $SERVER_LOG"
    if (($# == 0)); then
        set -- -n 100
    fi
    exec tail "$@" "$SERVER_LOG"
}

usage() {
    sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

main() {
    local cmd="${1:-}"
    (($#)) && shift
    case "$cmd" in
        fetch) cmd_fetch ;;
        up) cmd_up ;;
        down) cmd_down ;;
        status) cmd_status ;;
        logs) cmd_logs "$@" ;;
        *) usage ;;
    esac
}

main "$@"
