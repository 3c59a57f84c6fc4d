#!/usr/bin/env bash
# HTTP throughput and latency of the same axum handler behind no authentication, this
# crate's layer (Bearer token, cache hits) and tower-sessions + axum-login (cookie).
#
# Usage: benches/wrk.sh            (needs wrk and taskset: apt-get install -y wrk util-linux)
# Env:   DURATION (10s), WARMUP (2s), CONNECTIONS (64), THREADS (wrk threads, 1),
#        ROUNDS (3): each round runs every server once, so host noise spreads over all three
#        instead of landing on one; the table has the median round and the range,
#        SERVER_CPUS (0), CLIENT_CPUS (1): the server and wrk are pinned to different cores
#        with taskset, so neither steals the other's CPU time; the server's tokio runtime
#        sizes itself to the cores it is given.
# Writes benches/results/http.md and the raw wrk output benches/results/wrk-<mode>-<round>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-3}
SERVER_CPUS=${SERVER_CPUS:-0}
CLIENT_CPUS=${CLIENT_CPUS:-1}
RESULTS=benches/results
mkdir -p "$RESULTS"

command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 1; }
command -v taskset >/dev/null || { echo "taskset not found: apt-get install -y util-linux" >&2; exit 1; }

# Build in release (the bench profile) and find the server binary.
bin=$(cargo bench -p tower-customer-session-benches --bench http_server --no-run --message-format=json 2>/dev/null |
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
  local mode=$1 round=$2 out log line addr header
  out="$RESULTS/wrk-$mode-$round.txt"
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

rm -f "$RESULTS"/wrk-*.txt
for round in $(seq "$ROUNDS"); do
  for mode in bare layer login; do run "$mode" "$round"; done
done

python3 - "$RESULTS" "$THREADS" "$CONNECTIONS" "$DURATION" "$SERVER_CPUS" "$CLIENT_CPUS" "$ROUNDS" <<'EOF'
import re, statistics, sys
results, threads, connections, duration, server_cpus, client_cpus, rounds = sys.argv[1:]
rounds = int(rounds)
labels = {
    "bare": "axum, no authentication",
    "layer": "axum + this crate (Bearer, cache hit)",
    "login": "axum + tower-sessions MemoryStore + axum-login (cookie)",
}

def ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

def parse(mode, round):
    text = open(f"{results}/wrk-{mode}-{round}.txt").read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    pct = [ms(re.search(rf"^\s+{p}%\s+(\S+)", text, re.M).group(1)) for p in (50, 75, 90, 99)]
    return (rps, *pct)

runs = {mode: [parse(mode, r) for r in range(1, rounds + 1)] for mode in labels}
# Each round's servers ran back to back: a server's share of bare is taken within its round.
share = {mode: [run[0] / bare[0] for run, bare in zip(runs[mode], runs["bare"])] for mode in labels}

lines = [
    f"wrk -t{threads} -c{connections} -d{duration} --latency, GET /me; server on CPU {server_cpus}, "
    f"wrk on CPU {client_cpus} (taskset); {rounds} rounds, every server once per round",
    "",
    "| server | % of bare, median (range) | requests/s, median | p50 | p75 | p90 | p99 |",
    "|---|---:|---:|---:|---:|---:|---:|",
]
for mode in labels:
    pick = sorted(runs[mode], key=lambda run: run[0])[len(runs[mode]) // 2]
    cells = " | ".join(f"{p:.3f} ms" for p in pick[1:])
    lo, mid, hi = min(share[mode]), statistics.median(share[mode]), max(share[mode])
    lines.append(
        f"| {labels[mode]} | {100 * mid:.1f}% ({100 * lo:.1f}–{100 * hi:.1f}%) | {pick[0]:,.0f} | {cells} |"
    )
lines.append("")
lines.append("latencies are those of each server's median round")
ratio = statistics.median(l[0] / g[0] for l, g in zip(runs["layer"], runs["login"]))
lines.append(f"this crate vs tower-sessions + axum-login: {ratio:.2f}x the requests/s (median of rounds)")
text = "\n".join(lines) + "\n"
open(f"{results}/http.md", "w").write(text)
print(text)
EOF
