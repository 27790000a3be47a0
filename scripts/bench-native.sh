#!/usr/bin/env bash
# Native-mode benchmark and soak (IEC 62351-4 clauses 13-15), with `secmms bench` as the one client:
#   1. read rate in one run: plain RFC 1006, T-profile only (TLS), native E2E (AES-GCM, AES-CBC+HMAC,
#      HMAC only) without TLS, and native AES-GCM over TLS; 1 and 16 outstanding;
#   2. soak: N concurrent native-mode (AES-GCM) associations with continuous traffic for SOAK seconds,
#      zero failures required, and the server's memory per association (RSS growth / N).
# Usage: scripts/bench-native.sh [SECONDS-PER-POINT] [SOAK-SECONDS] [ASSOCIATIONS]
#        (defaults 10, 600, 1000). Prints Markdown for docs/PERFORMANCE.md.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
soak=${2:-600}
n=${3:-1000}
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true
cargo build --release -q -p secmms-cli
bin=target/release/secmms
pki=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$pki"' EXIT

# PKI from our own tooling: one CA, TLS and Annex G application certificates per side.
$bin cert ca --out "$pki/ca" >/dev/null 2>&1
for side in s c; do
  $bin cert issue --ca "$pki/ca" --tls --ip 127.0.0.1 --key-type p256 --out "$pki/${side}tls" >/dev/null 2>&1
done
$bin cert issue --ca "$pki/ca" --ap-title 1.1.1.999.1 --ae-qualifier 12 --key-type p256 --out "$pki/sapp" >/dev/null 2>&1
$bin cert issue --ca "$pki/ca" --ap-title 1.1.1.999 --ae-qualifier 12 --key-type p256 --out "$pki/capp" >/dev/null 2>&1
ca=(--ca "$pki/ca/ca.pem")
stls=(--tls --cert "$pki/stls/tls-cert.pem" --key "$pki/stls/tls-key.pem")
ctls=(--tls --cert "$pki/ctls/tls-cert.pem" --key "$pki/ctls/tls-key.pem")
snat=(--mode native --app-cert "$pki/sapp/cert.pem" --app-key "$pki/sapp/key.pem")
cnat=(--mode native --app-cert "$pki/capp/cert.pem" --app-key "$pki/capp/key.pem")

# Servers: plain, TLS only, native without TLS, native over TLS. One config raises the limits.
cat > "$pki/server.toml" <<EOF
[server]
max_associations = $((n + 100))
associate_timeout_secs = 60
idle_timeout_secs = 0
EOF
$bin server --config "$pki/server.toml" --listen 127.0.0.1:11502 2>/dev/null & pids+=($!)
$bin server --config "$pki/server.toml" --listen 127.0.0.1:11503 "${stls[@]}" "${ca[@]}" 2>/dev/null & pids+=($!)
$bin server --config "$pki/server.toml" --listen 127.0.0.1:11504 "${snat[@]}" "${ca[@]}" 2>/dev/null & pids+=($!)
$bin server --config "$pki/server.toml" --listen 127.0.0.1:11505 "${snat[@]}" "${stls[@]}" "${ca[@]}" 2>/dev/null & pids+=($!)
native_pid=${pids[2]}
sleep 2

point() { # name port outstanding args...
  local name=$1 port=$2 out=$3; shift 3
  local json
  json=$($bin bench --connect 127.0.0.1:$port --associations 1 --outstanding "$out" --duration "$secs" --json "$@" 2>/dev/null || echo '{}')
  python3 -c 'import json,sys; d=json.loads(sys.argv[1] or "{}"); print("%.0f %d %d %d" % (d.get("requests_per_sec",0), d.get("p50_us",0), d.get("p99_us",0), d.get("errors",-1)))' "$json"
}

echo "## Read rate: plain vs T-profile vs native (1 association, ${secs} s per point)"
echo
echo "| configuration | outstanding | req/s | p50 µs | p99 µs | errors | vs plain |"
echo "|---|---|---|---|---|---|---|"
for out in 1 16; do
  set -- $(point plain 11502 "$out"); plain=$1
  echo "| plain RFC 1006 | $out | $1 | $2 | $3 | $4 | 1.00 |"
  set -- $(point tls 11503 "$out" "${ctls[@]}" "${ca[@]}")
  echo "| T-profile only (TLS) | $out | $1 | $2 | $3 | $4 | $(python3 -c "print('%.2f' % ($1/max(1,$plain)))") |"
  for enc in gcm cbc none; do
    set -- $(point native 11504 "$out" "${cnat[@]}" "${ca[@]}" --encrypt $enc)
    echo "| native E2E, --encrypt $enc | $out | $1 | $2 | $3 | $4 | $(python3 -c "print('%.2f' % ($1/max(1,$plain)))") |"
  done
  set -- $(point native-tls 11505 "$out" "${cnat[@]}" "${ctls[@]}" "${ca[@]}" --encrypt gcm)
  echo "| native E2E AES-GCM over TLS | $out | $1 | $2 | $3 | $4 | $(python3 -c "print('%.2f' % ($1/max(1,$plain)))") |"
done

echo
echo "## Soak: $n native-mode (AES-GCM) associations, continuous reads for ${soak} s"
echo
rss() { awk '/VmRSS/ {print $2}' /proc/$1/status; }
before=$(rss "$native_pid")
$bin bench --connect 127.0.0.1:11504 --associations "$n" --outstanding 1 --duration "$soak" --json "${cnat[@]}" "${ca[@]}" --encrypt gcm > "$pki/soak.json" 2>"$pki/soak.err" &
bench_pid=$!
# Sample the server's memory while all associations are up (the bench associates them first).
peak=$before
for _ in $(seq 1 $((soak / 5 + 12))); do
  sleep 5
  kill -0 $bench_pid 2>/dev/null || break
  r=$(rss "$native_pid"); [ "$r" -gt "$peak" ] && peak=$r
done
wait $bench_pid || true
json=$(cat "$pki/soak.json" 2>/dev/null || true)
[ -n "$json" ] || { echo "soak bench failed: $(tail -3 "$pki/soak.err")"; json='{}'; }
python3 - "$json" "$before" "$peak" "$n" <<'PY'
import json, sys
d = json.loads(sys.argv[1] or "{}")
before, peak, n = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
print("| associations | seconds | requests | errors | req/s | p50 µs | p99 µs | server RSS before | peak | per association |")
print("|---|---|---|---|---|---|---|---|---|---|")
print(f"| {d.get('associations', 0)} | {d.get('seconds', 0):.0f} | {d.get('requests', 0)} | {d.get('errors', -1)} | "
      f"{d.get('requests_per_sec', 0):.0f} | {d.get('p50_us', 0)} | {d.get('p99_us', 0)} | {before} KiB | {peak} KiB | "
      f"{(peak - before) / max(1, n):.1f} KiB |")
sys.exit(0 if d.get("errors", -1) == 0 and d.get("associations", 0) == n else 1)
PY
