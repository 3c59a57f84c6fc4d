#!/usr/bin/env python3
"""Summarise `cargo bench -p tower-customer-session-benches --bench middleware` into benches/results/.

Reads criterion's target/criterion/per_request/<row>/new/estimates.json and writes
  per_request.json  the medians and confidence intervals, in ns;
  per_request.md    the table with overheads and ratios;
  per_request.svg   a bar chart of the median cost per request by system.
Standard library only.
"""

import json
import os
import sys
from xml.sax.saxutils import escape

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRITERION = os.path.join(ROOT, "target", "criterion", "per_request")
RESULTS = os.path.join(ROOT, "benches", "results")

# (row id, label, system, baseline row id). Order is the table's and the chart's.
ROWS = [
    ("bare", "bare service (no auth)", "baseline", None),
    ("tcs_hit_bearer", "cache hit, Bearer header", "this crate", "bare"),
    ("tcs_hit_cookie", "cache hit, cookie", "this crate", "bare"),
    ("tcs_negative_hit", "negative-cache hit (unknown token)", "this crate", "bare"),
    ("tcs_malformed", "malformed token (bad checksum)", "this crate", "bare"),
    ("tcs_miss_load", "miss + MemoryStore load (live session)", "this crate", "bare"),
    ("tcs_miss_unknown_no_negative_cache", "miss + load, unknown token, negative cache off", "this crate", "bare"),
    ("bare_1k_templates", "bare service, 1,000 rotating requests", "baseline", None),
    ("tcs_hit_1k", "cache hit, 1,000 live sessions (random order)", "this crate", "bare_1k_templates"),
    ("floor_1k", "floor: HMAC + quick_cache probe + compare + extension, 1,000", "floor", "bare_1k_templates"),
    ("bare_1m_templates", "bare service, 1,000,000 rotating requests", "baseline", None),
    ("tcs_hit_1m", "cache hit, 1,000,000 live sessions (random order)", "this crate", "bare_1m_templates"),
    ("floor_1m", "floor: HMAC + quick_cache probe + compare + extension, 1,000,000", "floor", "bare_1m_templates"),
    ("jwt_hs256", "stateless JWT (HS256, jsonwebtoken 9), decoded and validated", "JWT", "bare"),
    ("th_validate_bearer", "tower-http ValidateRequestHeader::bearer (static token, no principal)", "tower-http", "bare"),
    ("th_async_authorize_map", "tower-http AsyncRequireAuthorization + HashMap", "tower-http", "bare"),
    ("ts_memory", "tower-sessions MemoryStore (id in session)", "tower-sessions", "bare"),
    ("ts_memory_full_customer", "tower-sessions MemoryStore (customer JSON in session)", "tower-sessions", "bare"),
    ("ts_caching_moka", "tower-sessions CachingSessionStore<Moka, Memory>", "tower-sessions", "bare"),
    ("al_memory", "axum-login on tower-sessions MemoryStore", "axum-login", "bare"),
    ("al_caching_moka", "axum-login on CachingSessionStore<Moka, Memory>", "axum-login", "bare"),
]
COLORS = {
    "baseline": "#9e9e9e",
    "floor": "#7a7a7a",
    "this crate": "#1b7f5a",
    "JWT": "#6b4fa0",
    "tower-http": "#3f6fb5",
    "tower-sessions": "#c47f17",
    "axum-login": "#b53f3f",
}


def load():
    found = {}
    for row, *_ in ROWS:
        path = os.path.join(CRITERION, row, "new", "estimates.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            median = json.load(f)["median"]
        found[row] = {
            "median_ns": median["point_estimate"],
            "ci_low_ns": median["confidence_interval"]["lower_bound"],
            "ci_high_ns": median["confidence_interval"]["upper_bound"],
        }
    return found


def fmt_ns(ns):
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"


def table(found):
    bare = found["bare"]["median_ns"]
    refs = [found.get("tcs_hit_bearer"), found.get("tcs_hit_cookie")]
    lines = [
        "| system | row | median | overhead over its baseline | × baseline "
        "| median ÷ this crate's hit (Bearer / cookie) "
        "| overhead ÷ this crate's hit overhead (Bearer / cookie) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row, label, system, base in ROWS:
        if row not in found:
            continue
        median = found[row]["median_ns"]
        if base is None:
            lines.append(f"| {system} | {label} | {fmt_ns(median)} | — | 1.00 | — | — |")
            continue
        base_ns = found[base]["median_ns"]
        overhead = median - base_ns
        cells = [system, label, fmt_ns(median), fmt_ns(overhead), f"{median / base_ns:.2f}"]
        if system not in ("this crate", "floor") and all(refs):
            cells.append(" / ".join(f"{median / r['median_ns']:.2f}" for r in refs))
            cells.append(" / ".join(f"{overhead / (r['median_ns'] - bare):.2f}" for r in refs))
        else:
            cells += ["—", "—"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", floor_table(found)]
    return "\n".join(lines) + "\n"


def floor_table(found):
    """The hit against its physical floor, overheads over the same bare rows."""
    lines = [
        "| sessions | floor overhead | hit overhead | hit ÷ floor | target |",
        "|---:|---:|---:|---:|---:|",
    ]
    for n, hit, floor, bare, target in [
        ("1,000", "tcs_hit_1k", "floor_1k", "bare_1k_templates", 1.8),
        ("1,000,000", "tcs_hit_1m", "floor_1m", "bare_1m_templates", 1.6),
    ]:
        if not all(r in found for r in (hit, floor, bare)):
            continue
        base = found[bare]["median_ns"]
        f = found[floor]["median_ns"] - base
        h = found[hit]["median_ns"] - base
        lines.append(f"| {n} | {fmt_ns(f)} | {fmt_ns(h)} | {h / f:.2f} | ≤ {target} |")
    return "\n".join(lines)


def svg(found):
    rows = [(r, label, system) for r, label, system, _ in ROWS if r in found]
    width, left, right, top, row_h = 980, 430, 110, 56, 24
    height = top + row_h * len(rows) + 40
    span = max(found[r]["median_ns"] for r, *_ in rows)
    scale = (width - left - right) / span
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        '<text x="10" y="22" font-size="15" font-weight="bold">Median cost per request '
        "(ready + call, current-thread tokio; lower is better)</text>",
        '<text x="10" y="40" fill="#555">bars: criterion median; this crate in green; '
        "baselines in grey</text>",
    ]
    # Vertical grid every microsecond.
    us = 0
    while us * 1000 <= span:
        x = left + us * 1000 * scale
        out.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 30}" stroke="#e4e4e4"/>')
        out.append(f'<text x="{x:.1f}" y="{height - 16}" text-anchor="middle" fill="#555">{us} µs</text>')
        us += 1 if span < 6000 else 2
    for i, (row, label, system) in enumerate(rows):
        y = top + i * row_h
        ns = found[row]["median_ns"]
        w = max(ns * scale, 1)
        out.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{escape(label)}</text>')
        out.append(f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" fill="{COLORS[system]}"/>')
        out.append(f'<text x="{left + w + 6:.1f}" y="{y + 15}">{escape(fmt_ns(ns))}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    found = load()
    if "bare" not in found:
        sys.exit("no criterion results: run `cargo bench -p tower-customer-session-benches --bench middleware` first")
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "per_request.json"), "w") as f:
        json.dump(found, f, indent=2)
        f.write("\n")
    text = table(found)
    with open(os.path.join(RESULTS, "per_request.md"), "w") as f:
        f.write(text)
    with open(os.path.join(RESULTS, "per_request.svg"), "w") as f:
        f.write(svg(found))
    print(text)


if __name__ == "__main__":
    main()
