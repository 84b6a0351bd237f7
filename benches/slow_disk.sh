#!/usr/bin/env bash
# Cold loading from a slow disk: does reading ahead in loader order (madvise WILLNEED of the
# batches a window ahead) help? docs/LOADER.md reports what this printed.
#
# Usage (root, Linux with loop devices and cgroup blkio throttling, v1 or v2):
#   benches/slow_disk.sh DATASET [READ_MB_PER_S] [READ_IOPS] [THREADS] [READ_AHEAD_KB]
# It builds the slow disk itself and removes it afterwards: a loop device (direct I/O, so the
# backing file's page cache does not hide it) holding an ext4 copy of DATASET, read through a
# cgroup that limits its reads to READ_MB_PER_S (default 100) and READ_IOPS (default 200), with
# the kernel's read-ahead window at READ_AHEAD_KB (default 128, Linux's usual). Then
# `gdt bench load --cold` runs there with and without gdt's read-ahead, alternating. Use a
# dataset larger than what a run reads (each run reads (5 + BATCHES) x 8 records), so that
# every read is cold.
set -euo pipefail
DATASET=${1:?usage: benches/slow_disk.sh DATASET [READ_MB_PER_S] [READ_IOPS] [THREADS]}
MBPS=${2:-100}
IOPS=${3:-200}
THREADS=${4:-2}
RA_KB=${5:-128}
GDT=${GDT:-target/release/gdt}
ROUNDS=${ROUNDS:-3}
BATCHES=${BATCHES:-20}
[ "$(id -u)" -eq 0 ] || { echo "slow_disk.sh: needs root (loop device, mount, cgroup)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/gdt-slow-disk.XXXXXX")
loop="" cg="" mnt="$work/mnt"
cleanup() {
  set +e
  [ -n "$cg" ] && { [ -d "$cg" ] && rmdir "$cg"; }
  mountpoint -q "$mnt" && umount "$mnt"
  [ -n "$loop" ] && losetup -d "$loop"
  rm -rf "$work"
}
trap cleanup EXIT

size_mb=$(( $(du -sm "$DATASET" | cut -f1) * 12 / 10 + 64 ))
truncate -s "${size_mb}M" "$work/disk.img"
mkfs.ext4 -q -F "$work/disk.img"
loop=$(losetup --find --show --direct-io=on "$work/disk.img")
mkdir -p "$mnt"
mount "$loop" "$mnt"
cp -r "$DATASET" "$mnt/ds"
sync
dev=$(lsblk -no MAJ:MIN "$loop" | tr -d ' ')
echo "$RA_KB" > "/sys/block/$(basename "$loop")/queue/read_ahead_kb"
echo "slow disk: $loop ($dev), reads limited to ${MBPS} MB/s and ${IOPS} IOPS; read_ahead_kb $(cat /sys/block/$(basename "$loop")/queue/read_ahead_kb)"

if [ -d /sys/fs/cgroup/blkio ]; then
  cg=/sys/fs/cgroup/blkio/gdt-slow-$$
  mkdir "$cg"
  echo "$dev $((MBPS * 1000000))" > "$cg/blkio.throttle.read_bps_device"
  echo "$dev $IOPS" > "$cg/blkio.throttle.read_iops_device"
else
  cg=/sys/fs/cgroup/gdt-slow-$$
  mkdir "$cg"
  echo "+io" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
  echo "$dev rbps=$((MBPS * 1000000)) riops=$IOPS" > "$cg/io.max"
fi

run() { # label, extra flags
  sh -c "echo \$\$ > $cg/cgroup.procs && exec $GDT bench load $mnt/ds --cold --threads $THREADS \
    --rounds 1 --batches $BATCHES --json $2" | python3 -c "
import json, sys
r = json.load(sys.stdin)
t = r['scaling'][-1]
print(f\"$1: {t['clips_per_s']:.0f} clips/s (floor {t['floor']['median']:.0f}), \"
      f\"{(t['storage_bytes_per_clip'] or 0) / 1e3:.0f} KB/clip from storage, wait {100 * t['stages']['wait']:.0f}%\")"
}
for round in $(seq 1 "$ROUNDS"); do
  run "round $round, read-ahead on " ""
  run "round $round, read-ahead off" "--no-readahead"
done
