#!/usr/bin/env python3
"""Summarise `cargo bench -p tower-customer-session-benches --bench rotation`: criterion's medians of the run just made
(target/criterion/key_rotation/<row>/new/estimates.json) as a table, each row with its
ratio to the row without a rotation in the same run. Standard library only.
"""

import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRITERION = os.path.join(ROOT, "target", "criterion", "key_rotation")

# (row, label, the row it is divided by: the same request without a rotation)
ROWS = [
    ("bare", "bare service (no auth)", None),
    ("negative_hit/keys_0", "negative hit, no other key", None),
    ("negative_hit/keys_1", "negative hit, 1 other key", "negative_hit/keys_0"),
    ("negative_hit/keys_2", "negative hit, 2 other keys", "negative_hit/keys_0"),
    ("miss_current/keys_0", "miss + load, session under the current key, no other key", None),
    ("miss_current/keys_1", "miss + load, session under the current key, 1 other key", "miss_current/keys_0"),
    ("miss_current/keys_2", "miss + load, session under the current key, 2 other keys", "miss_current/keys_0"),
    ("miss_oldest/keys_1", "miss + 2 loads, session under the accepted key (1 other key)", "miss_current/keys_0"),
    ("miss_oldest/keys_2", "miss + 3 loads, session under the last accepted key (2 other keys)", "miss_current/keys_0"),
    ("unknown_no_negative_cache/keys_0", "unknown token, negative cache off, no other key", None),
    ("unknown_no_negative_cache/keys_1", "unknown token, negative cache off, 1 other key (2 loads)", "unknown_no_negative_cache/keys_0"),
    ("unknown_no_negative_cache/keys_2", "unknown token, negative cache off, 2 other keys (3 loads)", "unknown_no_negative_cache/keys_0"),
    ("hit_1k/keys_0", "hit, 1,000 sessions, no other key", None),
    ("hit_1k/keys_1_stored_under_current", "hit, 1,000 sessions, 1 other key, stored under the current key", "hit_1k/keys_0"),
    ("hit_1k/keys_1_stored_under_accepted", "hit, 1,000 sessions, 1 other key, stored under the accepted key", "hit_1k/keys_0"),
]
# Two rows that must cost the same, compared directly.
PAIRS = [
    ("hit_1k/keys_1_stored_under_accepted", "hit_1k/keys_1_stored_under_current"),
]


def ns(value):
    return f"{value / 1000:.2f} µs" if value >= 1000 else f"{value:.0f} ns"


def this_run():
    medians = {}
    for row, _, _ in ROWS:
        # criterion writes a row id `a/b` to the directory `a_b`.
        path = os.path.join(CRITERION, row.replace("/", "_"), "new", "estimates.json")
        with open(path) as f:
            medians[row] = json.load(f)["median"]["point_estimate"]
    return medians


def ratios(medians):
    out = {row: medians[row] / medians[base] for row, _, base in ROWS if base}
    for a, b in PAIRS:
        out[f"{a} ÷ {b}"] = medians[a] / medians[b]
    return out


def main():
    medians = this_run()
    r = ratios(medians)
    print("| row | median | ratio to the row without rotation |")
    print("|---|---:|---:|")
    for row, label, base in ROWS:
        print(f"| {label} | {ns(medians[row])} | {f'{r[row]:.2f}' if base else '—'} |")
    for a, b in PAIRS:
        print(f"\n{a} ÷ {b}: {r[f'{a} ÷ {b}']:.2f}")


if __name__ == "__main__":
    main()
