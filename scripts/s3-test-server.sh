#!/usr/bin/env bash
# A throwaway S3-compatible server on 127.0.0.1 (Garage, a single node) for the object
# storage tests and benchmarks: a real server, not a mock.
#
#   scripts/s3-test-server.sh start DIR [BUCKET]  # starts it; DIR/env holds the AWS_* lines
#   scripts/s3-test-server.sh stop DIR            # stops it (SIGTERM; it exits in ~1 s)
#
# DIR holds its config, metadata and data; delete it after `stop`. `start` on a DIR that
# was stopped starts the same server again (same port, key and objects). The server also stops by
# itself after GDT_S3_TEST_SERVER_SECONDS (3600), so a test killed before `stop` does not
# leave it running for ever. Garage (AGPL) runs as a separate program and is never linked;
# scripts/setup.sh installs it (`cargo install garage --locked`).
set -euo pipefail

cmd=${1:-}
dir=${2:-}
bucket=${3:-gdt-test}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR [BUCKET]" >&2; exit 2; }
garage=${GARAGE:-$(command -v garage || echo "$HOME/.cargo/bin/garage")}

stop() {
    if [ -f "$dir/pid" ]; then
        local pid
        pid=$(cat "$dir/pid")
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$dir/pid"
    fi
}

case "$cmd" in
stop)
    stop
    exit 0
    ;;
start) ;;
*) echo "usage: $0 start|stop DIR [BUCKET]" >&2; exit 2 ;;
esac

[ -x "$garage" ] || { echo "$0: garage is not installed (scripts/setup.sh installs it)" >&2; exit 1; }
mkdir -p "$dir/meta" "$dir/data"
dir=$(cd "$dir" && pwd)
g() { "$garage" -c "$dir/garage.toml" "$@"; }
fresh=false
if [ ! -f "$dir/env" ]; then
    fresh=true
    # Three free ports on 127.0.0.1: S3, RPC, admin.
    read -r s3 rpc admin < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
    cat >"$dir/garage.toml" <<EOF
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
# Shards are zstd-compressed already: the server compressing them again costs CPU (that of the
# loader, when they share a machine) and saves nothing.
compression_level = "none"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin"
EOF
fi
# `timeout` bounds its life; its PID is the one to signal (it passes SIGTERM on).
timeout --signal=TERM "${GDT_S3_TEST_SERVER_SECONDS:-3600}" "$garage" -c "$dir/garage.toml" server \
    >>"$dir/server.log" 2>&1 &
echo $! >"$dir/pid"
trap 'stop' ERR
for _ in $(seq 100); do
    g status >/dev/null 2>&1 && break
    sleep 0.1
done
if $fresh; then
    node=$(g status 2>/dev/null | grep -oE '^[0-9a-f]{16}' | head -1)
    [ -n "$node" ] || { echo "$0: garage did not start; see $dir/server.log" >&2; exit 1; }
    g layout assign -z dc1 -c 2G "$node" >/dev/null
    g layout apply --version 1 >/dev/null
    g bucket create "$bucket" >/dev/null
    g key create gdt-test-key >/dev/null
    g bucket allow --read --write --owner "$bucket" --key gdt-test-key >/dev/null
    info=$(g key info gdt-test-key --show-secret)
    s3=$(sed -n 's/^api_bind_addr = "127.0.0.1:\([0-9]*\)"$/\1/p' "$dir/garage.toml" | head -1)
    cat >"$dir/env.tmp" <<EOF
AWS_ENDPOINT_URL=http://127.0.0.1:$s3
AWS_ACCESS_KEY_ID=$(echo "$info" | awk '/Key ID/ {print $NF}')
AWS_SECRET_ACCESS_KEY=$(echo "$info" | awk '/Secret key/ {print $NF}')
AWS_REGION=garage
GDT_S3_BUCKET=$bucket
EOF
    mv "$dir/env.tmp" "$dir/env"
else
    # A restarted server: wait until the bucket answers (the key and layout are kept).
    for _ in $(seq 100); do
        g bucket info "$(sed -n 's/^GDT_S3_BUCKET=//p' "$dir/env")" >/dev/null 2>&1 && break
        sleep 0.1
    done
fi
cat "$dir/env"
