#!/usr/bin/env bash
# Foundation benchmark: `secmms bench` (the same client for all) against our server, the open61850
# server and the `iec61850` server, in interleaved rounds, with the one-outstanding floor of this
# machine. Prints a Markdown table for docs/PERFORMANCE.md.
# Usage: scripts/bench-peers.sh [SECONDS] [ROUNDS] [BASELINE_BINARY]   (default 5 s per point,
# 3 rounds; a secmms binary of an earlier commit adds the before/after comparison)
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/bench-peers.py --seconds "${1:-5}" --rounds "${2:-3}" ${3:+--baseline "$3"}
