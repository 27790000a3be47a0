#!/usr/bin/env bash
# T-profile benchmark: `secmms bench` (the same client for all) against our server over TLS, our server
# in plain, and the `iec61850` TLS server, in one run, beside the ceiling: a bare TLS ping-pong with
# the same message sizes (crates/secmms/examples/tls_pingpong.rs). Prints a Markdown table for
# docs/PERFORMANCE.md. Usage: scripts/bench-tls.sh [SECONDS]   (default 10 per point)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
py=${SECMMS_PYTHON:-target/peers-venv/bin/python}
cargo build --release -q -p secmms-cli
cargo build --release -q -p secmms --example tls_pingpong
bin=target/release/secmms
model=tests/interop/demo.cid
pki=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$pki"' EXIT

# Test PKI: RSA-2048 CA, server and client leaves (as ../shared/interop/README.md §B.1).
(
  cd "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 30 -subj "/CN=secmms bench CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  for n in server client; do
    openssl req -newkey rsa:2048 -nodes -keyout $n.key -out $n.csr -subj "/CN=$n.local" 2>/dev/null
    printf "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:$n.local,DNS:localhost,IP:127.0.0.1\n" > $n.ext
    openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $n.pem -days 30 -sha256 -extfile $n.ext 2>/dev/null
  done
)
tls=(--tls --cert "$pki/client.pem" --key "$pki/client.key" --ca "$pki/ca.pem")
$bin server --listen 127.0.0.1:11402 --model $model 2>/dev/null & pids+=($!)
$bin server --listen 127.0.0.1:11403 --model $model --tls --cert "$pki/server.pem" --key "$pki/server.key" --ca "$pki/ca.pem" 2>/dev/null & pids+=($!)
$py tests/interop/tls_peers.py server iec61850 11404 3600 $model "$pki" >/dev/null 2>&1 & pids+=($!)
sleep 4

pingpong() { target/release/examples/tls_pingpong "$pki" "$secs" tls13 | python3 -c 'import json,sys; print("%.0f" % json.load(sys.stdin)["per_sec"])'; }
# The ceiling is measured before and after the MMS runs; the higher figure is used.
c1=$(pingpong)
echo "| target | transport | outstanding | req/s | p50 µs | p99 µs | errors |"
echo "|---|---|---|---|---|---|---|"
echo "| bare TLS 1.3 ping-pong (69/37 octets) | TLS | 1 | $c1 | | | |"
declare -A rate
for target in "secmms-plain:11402:" "secmms-tls:11403:tls" "iec61850-tls:11404:tls"; do
  IFS=: read -r name port mode <<< "$target"
  for out in 1 16; do
    extra=(); [ "$mode" = tls ] && extra=("${tls[@]}")
    json=$($bin bench --connect 127.0.0.1:$port --associations 1 --outstanding $out --duration "$secs" --json "${extra[@]}" 2>/dev/null || echo '{}')
    r=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1] or "{}"); print("%.0f %d %d %d" % (d.get("requests_per_sec",0), d.get("p50_us",0), d.get("p99_us",0), d.get("errors",-1)))' "$json")
    set -- $r
    echo "| $name | ${mode:-plain} | $out | $1 | $2 | $3 | $4 |"
    rate["$name-$out"]=$1
  done
done
c2=$(pingpong)
ceiling=$(( c1 > c2 ? c1 : c2 ))
echo "| bare TLS 1.3 ping-pong, measured again after the runs | TLS | 1 | $c2 (before: $c1) | | | |"
echo
python3 -c "import sys; c,t=int(sys.argv[1]),int(sys.argv[2]); print(f'one-outstanding MMS reads over TLS: {t} req/s = {100*t/max(1,c):.0f} % of the bare TLS ping-pong ceiling ({c}/s)')" "$ceiling" "${rate[secmms-tls-1]}"
python3 -c "import sys; a,b=int(sys.argv[1]),int(sys.argv[2]); print(f'secmms TLS / iec61850 TLS at 1 outstanding: {a/max(1,b):.2f}x')" "${rate[secmms-tls-1]}" "${rate[iec61850-tls-1]}"
