#!/usr/bin/env bash
# The secmms test command (README "Run the tests"). Installs what the tests need when it is missing
# (Debian packages, the Python peers from PyPI in a venv), then runs formatting, lint, docs and every test.
# Interop tests skip locally when a peer is missing, but fail when CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

need_apt=()
command -v tshark >/dev/null 2>&1 || need_apt+=(tshark)
command -v prosody >/dev/null 2>&1 || need_apt+=(prosody)
command -v xmllint >/dev/null 2>&1 || need_apt+=(libxml2-utils)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
dpkg -s libssl-dev >/dev/null 2>&1 || need_apt+=(libssl-dev)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

venv="$root/target/peers-venv"
if ! "$venv/bin/python" -c 'import open61850, iec61850, cryptography, pyiec61850' >/dev/null 2>&1; then
  echo "==> creating the Python peer venv in $venv"
  python3 -m venv "$venv"
  # pyiec61850-ng: libiec61850 1.6.1 with mbedTLS 3.6, the C stack most IEC 61850 products ship.
  "$venv/bin/pip" install -q --disable-pip-version-check \
    "open61850==0.9.12" "iec61850==0.14.0" "cryptography" "pyiec61850-ng==1.6.1.10"
fi
export SECMMS_PYTHON="$venv/bin/python"
export SECMMS_PEERS_SCRIPT="$root/tests/interop/peers.py"
export SECMMS_LIBIEC_SCRIPT="$root/tests/interop/libiec_peers.py"

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps -q
echo "==> cargo test"
cargo test --workspace --release 2>&1 | tee target/test-output.txt
grep -q '^test result:' target/test-output.txt
