#!/usr/bin/env bash
# HTTP throughput and latency of the same axum handler behind no authentication, this
# crate's layer (Bearer token, cache hits) and tower-sessions + axum-login (cookie).
#
# Usage: benches/wrk.sh            (needs wrk and taskset: apt-get install -y wrk util-linux)
# Env:   DURATION (10s), WARMUP (2s), CONNECTIONS (64), THREADS (wrk threads, 1),
#        SERVER_CPUS (0), CLIENT_CPUS (1): the server and wrk are pinned to different cores
#        with taskset, so neither steals the other's CPU time; the server's tokio runtime
#        sizes itself to the cores it is given.
# Writes benches/results/http.md and the raw wrk output benches/results/wrk-<mode>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-1}
SERVER_CPUS=${SERVER_CPUS:-0}
CLIENT_CPUS=${CLIENT_CPUS:-1}
RESULTS=benches/results
mkdir -p "$RESULTS"

command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 1; }
command -v taskset >/dev/null || { echo "taskset not found: apt-get install -y util-linux" >&2; exit 1; }

# Build in release (the bench profile) and find the server binary.
bin=$(cargo bench --bench http_server --no-run --message-format=json 2>/dev/null |
  python3 -c '
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["target"]["name"] == "http_server":
        print(msg["executable"])
')
[ -x "$bin" ] || { echo "could not build the http_server bench" >&2; exit 1; }

server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true; }
trap cleanup EXIT

run() {
  local mode=$1 out log line addr header
  out="$RESULTS/wrk-$mode.txt"
  log=$(mktemp)
  taskset -c "$SERVER_CPUS" "$bin" --serve "$mode" >"$log" &
  server_pid=$!
  for _ in $(seq 200); do grep -q '^READY ' "$log" && break; sleep 0.05; done
  line=$(grep '^READY ' "$log") || { echo "$mode did not start" >&2; exit 1; }
  addr=$(cut -d' ' -f2 <<<"$line")
  header=$(cut -d' ' -f3- <<<"$line")
  taskset -c "$CLIENT_CPUS" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" -H "$header" "http://$addr/me" >/dev/null
  taskset -c "$CLIENT_CPUS" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "$header" "http://$addr/me" >"$out"
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
  rm -f "$log"
  if grep -q 'Non-2xx' "$out"; then
    echo "$mode: some responses were not 2xx:" >&2; cat "$out" >&2; exit 1
  fi
}

for mode in bare layer login; do run "$mode"; done

python3 - "$RESULTS" "$THREADS" "$CONNECTIONS" "$DURATION" "$SERVER_CPUS" "$CLIENT_CPUS" <<'EOF'
import re, sys
results, threads, connections, duration, server_cpus, client_cpus = sys.argv[1:]
labels = {
    "bare": "axum, no authentication",
    "layer": "axum + this crate (Bearer, cache hit)",
    "login": "axum + tower-sessions MemoryStore + axum-login (cookie)",
}

def ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

rows = {}
for mode in labels:
    text = open(f"{results}/wrk-{mode}.txt").read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    pct = [ms(re.search(rf"^\s+{p}%\s+(\S+)", text, re.M).group(1)) for p in (50, 75, 90, 99)]
    rows[mode] = (rps, *pct)

bare = rows["bare"][0]
lines = [
    f"wrk -t{threads} -c{connections} -d{duration} --latency, GET /me; server on CPU {server_cpus}, wrk on CPU {client_cpus} (taskset)",
    "",
    "| server | requests/s | % of bare | p50 | p75 | p90 | p99 |",
    "|---|---:|---:|---:|---:|---:|---:|",
]
for mode, (rps, *pct) in rows.items():
    cells = " | ".join(f"{p:.3f} ms" for p in pct)
    lines.append(f"| {labels[mode]} | {rps:,.0f} | {100 * rps / bare:.1f}% | {cells} |")
lines.append("")
lines.append(f"this crate vs tower-sessions + axum-login: {rows['layer'][0] / rows['login'][0]:.2f}x the requests/s")
text = "\n".join(lines) + "\n"
open(f"{results}/http.md", "w").write(text)
print(text)
EOF
