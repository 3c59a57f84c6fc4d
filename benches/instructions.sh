#!/usr/bin/env bash
# Instructions per request of rows of benches/interleaved.rs (`count` mode), counted by callgrind
# (repeatable on a loaded machine, unlike wall-clock time). Needs valgrind.
#
#   benches/instructions.sh                 # every row
#   benches/instructions.sh tcs_hit_1k ...  # some rows
#   ITERS=50000 benches/instructions.sh     # more iterations per row (default 20,000)
# The miss row runs 20,000 sessions through a cache of 1,000 (MISS_SESSIONS).
set -euo pipefail
cd "$(dirname "$0")/.."

rows=("$@")
if [ ${#rows[@]} -eq 0 ]; then
    rows=(bare tcs_hit_bearer tcs_negative_hit bare_1k_templates tcs_hit_1k floor_1k tcs_miss_load jwt_hs256)
fi
iters=${ITERS:-20000}

binary=$(cargo bench -p tower-customer-session-benches --bench interleaved --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "interleaved":
        print(m["executable"])')
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

printf '| row | instructions per request |\n|---|---:|\n'
for row in "${rows[@]}"; do
    ITERS=$iters valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measured_loop*' \
        --callgrind-out-file="$out/$row.out" "$binary" count "$row" >/dev/null 2>"$out/$row.log"
    total=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$out/$row.log")
    printf '| %s | %d |\n' "$row" $((total / iters))
done
