#!/usr/bin/env bash
# Quick start: install dependencies, build Mill (release), initialise the data dir on
# first run, then run a single-node Mill server in the foreground (Ctrl-C stops it).
#   MILL_DATA_DIR  data directory        (default /var/lib/mill)
#   MILL_LISTEN    API listen address    (default 0.0.0.0:4400)
set -euo pipefail
cd "$(dirname "$0")/.."

data_dir=${MILL_DATA_DIR:-/var/lib/mill}
listen=${MILL_LISTEN:-0.0.0.0:4400}
port=${listen##*:}

scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target mill mill-shim
mill=build/release/src/mill
install -m 0755 "$mill" /usr/local/bin/mill
# One mill-shim per container; mill finds it beside its own executable.
install -m 0755 build/release/src/mill-shim /usr/local/bin/mill-shim

# The API is HTTPS (cluster CA: $data_dir/ca.pem) unless it listens on loopback only.
case "$listen" in
  127.*|localhost:*) scheme=http ;;
  *) scheme=https ;;
esac
if [ ! -f "$data_dir/api.token" ]; then
  mill init --data-dir "$data_dir" --address "$scheme://127.0.0.1:$port"
fi

echo
echo "Mill API: $scheme://127.0.0.1:$port  (token: $data_dir/api.token; the CLI reads ~/.config/mill/client.toml)"
echo "Try:      mill status"
echo
exec mill server --data-dir "$data_dir" --listen "$listen"
