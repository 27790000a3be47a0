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
$bin server --listen 127.0.0.1:11102 --model $model 2>/dev/null & pid_secmms=$!; pids+=($!)
$py tests/interop/peers.py server open61850 11103 3600 $model >/dev/null 2>&1 & pid_open61850=$!; pids+=($!)
$py tests/interop/peers.py server iec61850 11104 3600 $model >/dev/null 2>&1 & pid_iec61850=$!; pids+=($!)
sleep 4
# CPU time (user + system, clock ticks) a process has used so far.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
echo "| server | associations | outstanding | req/s | p50 µs | p99 µs | server CPU µs/request | errors |"
echo "|---|---|---|---|---|---|---|---|"
declare -A rate cpu
for target in "secmms:11102" "open61850:11103" "iec61850:11104"; do
  name=${target%%:*}; port=${target##*:}; pidvar="pid_$name"; pid=${!pidvar}
  for point in "1 1" "1 16" "4 16"; do
    set -- $point
    t0=$(ticks "$pid")
    json=$($bin bench --connect 127.0.0.1:$port --associations $1 --outstanding $2 --duration "$secs" --json 2>/dev/null || echo '{}')
    t1=$(ticks "$pid")
    r=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1] or "{}"); n=max(1,d.get("requests",0)+0); print("%.0f %d %d %.1f %d" % (d.get("requests_per_sec",0), d.get("p50_us",0), d.get("p99_us",0), (int(sys.argv[3])-int(sys.argv[2]))*1e6/int(sys.argv[4])/n, d.get("errors",-1)))' "$json" "$t0" "$t1" "$hz")
    set -- $1 $2 $r
    echo "| $name | $1 | $2 | $3 | $4 | $5 | $6 | $7 |"
    rate["$name-$1-$2"]=$3; cpu["$name-$1-$2"]=$6
  done
done
echo
for point in "1-1" "1-16" "4-16"; do
  best=$(( ${rate[open61850-$point]} > ${rate[iec61850-$point]} ? ${rate[open61850-$point]} : ${rate[iec61850-$point]} ))
  python3 -c "import sys; print(f'{sys.argv[1]} (associations-outstanding): secmms / faster peer request rate {int(sys.argv[2])/max(1,int(sys.argv[3])):.2f}x; server CPU per request secmms {float(sys.argv[4]):.1f} us, open61850 {float(sys.argv[5]):.1f} us, iec61850 {float(sys.argv[6]):.1f} us')" "$point" "${rate[secmms-$point]}" "$best" "${cpu[secmms-$point]}" "${cpu[open61850-$point]}" "${cpu[iec61850-$point]}"
done
