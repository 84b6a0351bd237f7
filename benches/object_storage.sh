#!/usr/bin/env bash
# The loader from local disk against the loader from an S3-compatible server, in one run on
# one dataset: `gdt bench load` (default settings: batch 8, 30-frame clips, 112 crops) from
#   local      the dataset directory (warm page cache)
#   loopback   the same dataset in Garage on 127.0.0.1 (`gdt copy`)
#   +0 ms      through the delay line with no delay (what the delay line itself costs)
#   +20 ms     through the delay line adding 20 ms of round-trip time, as far storage has
# each a process of its own (so its peak memory is its own), with its requests and bytes per
# clip, the digest (the same for all four), and the shares of a core the loader's process and
# the server used while that source's runs went on (all its thread counts; 100% = one core). Prints a Markdown table for docs/STORAGE.md.
#
#   benches/object_storage.sh DATASET [THREADS] [ROUNDS]
#   SPLIT=1 benches/object_storage.sh DATASET [THREADS] [ROUNDS]
#
# SPLIT=1 keeps the server and the delay line on the last core and the loader on the others
# (`taskset`), so that every source's loader has the same cores: what the loader loses to
# object storage itself, apart from the CPU a server on the same machine takes.
#
# The delay comes from benches/delay_proxy.py, a userspace delay line on 127.0.0.1 (netem
# would do it in the kernel, but the VMs this was written on have no netem qdisc). The
# server shares the machine's cores with the loader: on a small machine the figures are a
# lower bound on what a separate storage service gives.
set -euo pipefail
cd "$(dirname "$0")/.."
dataset=${1:?usage: benches/object_storage.sh DATASET [THREADS] [ROUNDS]}
threads=${2:-$(nproc)}
server_cores="" loader_cores=""
if [ "${SPLIT:-0}" = 1 ]; then
    last=$(($(nproc) - 1))
    [ "$last" -ge 1 ] || { echo "$0: SPLIT=1 needs 2 cores at least" >&2; exit 2; }
    server_cores="taskset -c $last" loader_cores="taskset -c 0-$((last - 1))"
fi
rounds=${3:-3}
gdt=${GDT:-target/release/gdt}
work=$(mktemp -d)
proxy_pid=""
cleanup() {
    [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null || true
    scripts/s3-test-server.sh stop "$work/s3" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

server_cpu() { # CPU seconds the server process has used so far (0 before it runs)
    local pid
    pid=$(pgrep -P "$(cat "$work/s3/pid" 2>/dev/null)" 2>/dev/null | head -1) || true
    [ -n "$pid" ] || { echo 0; return; }
    awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$pid/stat"
}

children_cpu() { # CPU seconds this shell's finished children have used, into $work/times
    # (bash's `times`, run in this shell: in a $(...) subshell it would count the subshell's)
    times >"$work/times.raw"
    awk 'NR == 2 { s = 0; for (i = 1; i <= 2; i++) { split($i, t, "m"); s += 60 * t[1] + t[2] } print s }' \
        "$work/times.raw" >"$work/times"
}

bench() { # NAME DATASET [ENV...]: one `gdt bench load` run, its JSON in $work/NAME.json and
    # the shares of one core the server and the loader used meanwhile in $work/NAME.cpu
    local name=$1 ds=$2 server0 loader0 t0
    shift 2
    server0=$(server_cpu)
    children_cpu
    loader0=$(cat "$work/times")
    t0=$(date +%s.%N)
    env "$@" $loader_cores "$gdt" bench load "$ds" --threads "$threads" --rounds "$rounds" --batches 40 --digest --json \
        >"$work/$name.json"
    children_cpu
    echo "$(date +%s.%N) $t0 $(server_cpu) $server0 $(cat "$work/times") $loader0" |
        awk '{printf "%.0f %.0f\n", 100 * ($3 - $4) / ($1 - $2), 100 * ($5 - $6) / ($1 - $2)}' >"$work/$name.cpu"
    echo "  $name done" >&2
}

$server_cores scripts/s3-test-server.sh start "$work/s3" >"$work/env"
set -a
# shellcheck disable=SC1091
. "$work/env"
set +a
url="s3://$GDT_S3_BUCKET/bench"
"$gdt" copy "$dataset" "$url" >&2
port=${AWS_ENDPOINT_URL##*:}

bench local "$dataset"
bench loopback "$url"

delay="benches/delay_proxy.py"
proxy=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
for ms in 0 20; do
    $server_cores python3 benches/delay_proxy.py "$proxy" "$port" "$ms" &
    proxy_pid=$!
    sleep 0.5
    bench "+$ms ms" "$url" AWS_ENDPOINT_URL="http://127.0.0.1:$proxy"
    kill "$proxy_pid"
    wait "$proxy_pid" 2>/dev/null || true
    proxy_pid=""
done

python3 - "$work" "$dataset" "$delay" "${SPLIT:-0}" <<'PY'
import json, pathlib, sys
work, dataset, delay = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
names = ["local", "loopback", "+0 ms", "+20 ms"]
runs = {n: json.loads((work / f"{n}.json").read_text()) for n in names}
cpu = {n: (work / f"{n}.cpu").read_text().split() for n in names}
local = runs["local"]
split = "; server and delay line on the last core, loader on the others" if sys.argv[4] == "1" else ""
print(f"dataset {dataset}; {local['machine']['cpu']}, {local['machine']['cores']} cores; delay by {delay}{split}")
print("| from | threads | clips/s (min-max) | vs local | requests/clip | KB fetched/clip | peak MiB | loader CPU | server CPU | digest |")
print("|---|---|---|---|---|---|---|---|---|---|")
for name, r in runs.items():
    for t in r["scaling"]:
        base = next(x for x in local["scaling"] if x["threads"] == t["threads"])
        req = t.get("requests_per_clip")
        kb = t.get("fetched_bytes_per_clip")
        print(f"| {name} | {t['threads']} | {t['clips_per_s']:.0f} ({t['loader']['min']:.0f}-{t['loader']['max']:.0f}) "
              f"| {100 * t['clips_per_s'] / base['clips_per_s']:.0f}% "
              f"| {'-' if req is None else f'{req:.2f}'} | {'-' if kb is None else f'{kb / 1e3:.0f}'} "
              f"| {r['peak_memory_mib']:.0f} | {cpu[name][1]}% | {cpu[name][0]}% | {t['digest']} |")
PY
