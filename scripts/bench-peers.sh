#!/usr/bin/env bash
# Measures `secmms bench` (the same client for all) against our server, the open61850 server and the
# `iec61850` server, all on loopback with the same SCL model, in one run, and prints a Markdown table
# for docs/PERFORMANCE.md. Usage: scripts/bench-peers.sh [SECONDS]   (default 10 per point)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
py=${SECMMS_PYTHON:-target/peers-venv/bin/python}
cargo build --release -q -p secmms-cli
bin=target/release/secmms
model=tests/interop/demo.cid
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
$bin server --listen 127.0.0.1:11102 --model $model 2>/dev/null & pids+=($!)
$py tests/interop/peers.py server open61850 11103 3600 $model >/dev/null 2>&1 & pids+=($!)
$py tests/interop/peers.py server iec61850 11104 3600 $model >/dev/null 2>&1 & pids+=($!)
sleep 4
echo "| server | associations | outstanding | req/s | p50 µs | p99 µs | errors |"
echo "|---|---|---|---|---|---|---|"
declare -A rate
for target in "secmms:11102" "open61850:11103" "iec61850:11104"; do
  name=${target%%:*}; port=${target##*:}
  for point in "1 1" "1 16" "4 16"; do
    set -- $point
    json=$($bin bench --connect 127.0.0.1:$port --associations $1 --outstanding $2 --duration "$secs" --json 2>/dev/null || echo '{}')
    r=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1] or "{}"); print("%.0f %d %d %d" % (d.get("requests_per_sec",0), d.get("p50_us",0), d.get("p99_us",0), d.get("errors",-1)))' "$json")
    set -- $1 $2 $r
    echo "| $name | $1 | $2 | $3 | $4 | $5 | $6 |"
    rate["$name-$1-$2"]=$3
  done
done
echo
for point in "1-1" "1-16" "4-16"; do
  best=$(( ${rate[open61850-$point]} > ${rate[iec61850-$point]} ? ${rate[open61850-$point]} : ${rate[iec61850-$point]} ))
  python3 -c "import sys; print(f'ratio secmms / faster peer at {sys.argv[1]} (associations-outstanding): {int(sys.argv[2])/max(1,int(sys.argv[3])):.2f}x')" "$point" "${rate[secmms-$point]}" "$best"
done
