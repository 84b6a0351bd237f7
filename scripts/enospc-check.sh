#!/usr/bin/env bash
# A real full disk (ENOSPC), for pack and train: needs root to mount two small tmpfs. The CI
# tests simulate a full disk with RLIMIT_FSIZE instead (tests/faults.rs), which needs no
# privileges; this script checks that the real error takes the same path. Results are in
# docs/RELIABILITY.md.
#
# Usage (as root): scripts/enospc-check.sh [path/to/gdt]
set -euo pipefail

GDT=${1:-target/release/gdt}
work=$(mktemp -d "${TMPDIR:-/tmp}/gdt-enospc.XXXXXX")
cleanup() {
    umount "$work/small" "$work/run" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/small" "$work/run"

"$GDT" synth -o "$work/corpus" --count 8 --max-seconds 3 --containers mp4,avi --seed 4 >/dev/null

echo "== gdt pack into a 1 MiB filesystem"
mount -t tmpfs -o size=1m tmpfs "$work/small"
if "$GDT" pack "$work/corpus" -o "$work/small/ds" --mels 40 -j 2 --shard-size 1MiB \
    >"$work/pack.out" 2>&1; then
    echo "FAIL: pack succeeded on a full disk"; exit 1
fi
tail -1 "$work/pack.out"
grep -q "No space left on device" "$work/pack.out" || { echo "FAIL: error does not say ENOSPC"; exit 1; }
[ ! -e "$work/small/ds/dataset.json" ] || { echo "FAIL: dataset.json written"; exit 1; }
for shard in "$work"/small/ds/shard-*.gdt; do
    [ -e "$shard" ] || continue
    echo "FAIL: complete-looking shard $shard left"; exit 1
done
echo "left behind: $(ls -A "$work/small/ds" | wc -l) files"

echo "== the same command with room (filesystem grown to 64 MiB)"
mount -o remount,size=64m "$work/small"
"$GDT" pack "$work/corpus" -o "$work/small/ds" --mels 40 -j 2 --shard-size 1MiB >/dev/null 2>&1
"$GDT" verify "$work/small/ds" | tail -1

echo "== gdt train with its run directory on a 64 KiB filesystem"
mount -t tmpfs -o size=64k tmpfs "$work/run"
if "$GDT" train "$work/small/ds" --run-dir "$work/run/r" --device cpu --steps 2 -q \
    --set data.batch_size=3 --set data.clip=8 --set data.crop=32 --set data.scale_min=36 \
    --set data.scale_max=44 --set model.width=0.0625 --set run.checkpoint_every=2 \
    >"$work/train.out" 2>&1; then
    echo "FAIL: train succeeded on a full disk"; exit 1
fi
tail -1 "$work/train.out"
grep -q "No space left on device" "$work/train.out" || { echo "FAIL: error does not say ENOSPC"; exit 1; }
left=$(find "$work/run/r/checkpoints" -mindepth 1 -maxdepth 1 | wc -l)
[ "$left" -eq 0 ] || { echo "FAIL: $left checkpoint directories left (not even .tmp may stay)"; exit 1; }
echo "OK: pack and train fail on ENOSPC naming the file and leave no partial file behind"
