#!/usr/bin/env bash
# A newcomer's first hour, scripted (issue 12): a fresh clone, `make demo`, `make demo` again on the
# same var/, then the whole test suite, then `make demo` once more. After each demo it checks that
# every published turn was stored and that the counts the demo printed match the ClickHouse tables
# (turns by run id; alerts of the run's conversations, by kind). The broker runs on a free port, as a
# newcomer whose 9092 is taken would run it.
#
#   make newcomer                 # all of the above (about 35 minutes on 2 cores)
#   NEWCOMER_SKIP_TESTS=1 make newcomer   # the two demos only (about 8 minutes)
#
# Writes its log to $NEWCOMER_DIR/newcomer.log (default /tmp/convmon-newcomer) and ends with a summary.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="${NEWCOMER_DIR:-/tmp/convmon-newcomer}"
rm -rf "$dir" && mkdir -p "$dir"
log="$dir/newcomer.log"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export CONVMON_KAFKA_BOOTSTRAP="127.0.0.1:$port"
summary=()

say() { echo "newcomer: $*" | tee -a "$log" >&2; }

git clone -q "$repo" "$dir/convmon"
cd "$dir/convmon"
say "fresh clone of $(git rev-parse --short HEAD) in $dir/convmon; broker on $CONVMON_KAFKA_BOOTSTRAP"

check_demo() {  # $1: label, $2: the demo's output
  .venv/bin/python - "$1" "$2" <<'EOF'
import json, re, subprocess, sys
label, out = sys.argv[1], open(sys.argv[2]).read()
run = re.search(r"convmon demo — run (\w+)", out)[1]
published = int(re.search(r"turns published\s+(\d+)", out)[1])
stored = int(re.search(r"turns stored\s+(\d+)", out)[1])
printed = {k: (int(n), int(f)) for k, n, f in re.findall(r"^\s+(\w+)\s+(\d+) incident\(s\) paged,\s+(\d+) folded", out, re.M)}

def q(sql):
    r = subprocess.run([".venv/bin/convmon", "db", "query", "--json", sql], capture_output=True, text=True, check=True)
    return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]

where = f"JSONExtractString(metadata, 'demo_run') = '{run}'"
in_table = q(f"SELECT count() AS n FROM turns FINAL WHERE {where}")[0]["n"]
convs = f"SELECT conversation_id FROM turns WHERE {where}"
kinds = {r["kind"]: (int(r["paged"]), int(r["folded"])) for r in q(
    "SELECT kind, countIf(delivery = 'notified') AS paged, countIf(delivery = 'suppressed') AS folded FROM alerts FINAL "
    f"WHERE conversation_id IN ({convs}) OR (conversation_id IS NULL AND recorded_at >= "
    f"(SELECT min(ingested_at) FROM turns WHERE {where})) GROUP BY kind")}
problems = []
if not (published == stored == in_table):
    problems.append(f"turns: published {published}, printed as stored {stored}, in the table {in_table}")
if printed != kinds:
    problems.append(f"alerts printed {printed} but the table holds {kinds}")
report = "var/report.html"
import os
if not os.path.exists(report) or os.path.getsize(report) < 100_000:
    problems.append("var/report.html was not written")
print(f"{label}: run {run}, {published} published, {stored} stored, {in_table} in the table; alerts by kind "
      + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in sorted(printed.items())) + (" — OK" if not problems else ""))
for p in problems:
    print(f"{label}: MISMATCH {p}")
sys.exit(1 if problems else 0)
EOF
}

demo() {  # $1: label
  say "$1: make demo"
  local t0=$SECONDS
  if ! make demo > "$dir/$1.out" 2>"$dir/$1.err"; then
    say "$1: make demo FAILED (exit $?): see $dir/$1.out, $dir/$1.err"; summary+=("$1: make demo failed"); return 1
  fi
  cat "$dir/$1.out" >> "$log"
  local line; line="$(check_demo "$1" "$dir/$1.out")" || { say "$line"; summary+=("$line"); return 1; }
  say "$line ($((SECONDS - t0)) s)"; summary+=("$line ($((SECONDS - t0)) s)")
}

status=0
demo "first-demo" || status=1
demo "second-demo-same-var" || status=1
if [ -z "${NEWCOMER_SKIP_TESTS:-}" ]; then
  say "make test (the whole suite)"
  t0=$SECONDS
  if make test > "$dir/make-test.out" 2>&1; then
    line="make test: $(tail -n 1 "$dir/make-test.out") ($((SECONDS - t0)) s)"
  else
    line="make test FAILED: see $dir/make-test.out"; status=1
  fi
  say "$line"; summary+=("$line")
  demo "demo-after-tests" || status=1
fi
make kafka-down > /dev/null 2>&1 || true
echo
echo "newcomer run, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD):"
printf '  %s\n' "${summary[@]}"
exit $status
