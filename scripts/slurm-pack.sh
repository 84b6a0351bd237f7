#!/usr/bin/env bash
# Pack a large dataset on a Slurm cluster: an array job of N tasks, each packing part i of N
# of the input list (`gdt pack --part i/N`, every task computing its own range), then a merge
# job that starts when all of them have succeeded.
#
#   scripts/slurm-pack.sh INPUT OUT DATASET N [gdt pack flags...]
#
# INPUT is a folder of videos or a CSV manifest on a shared file system; the parts go to
# OUT/part-0 .. OUT/part-(N-1); DATASET is created beside them by `gdt merge` (hard links:
# keep OUT and DATASET on the same file system). A task that fails or is preempted is simply
# resubmitted: rerunning its command resumes from its last complete shard. Set GDT to the
# gdt binary and SBATCH_ARGS for partition, time or CPU flags, e.g.
#   SBATCH_ARGS="--partition cpu --cpus-per-task 16 --time 12:00:00"
set -euo pipefail
if [ $# -lt 4 ]; then
  sed -n '2,14p' "$0" >&2
  exit 2
fi
INPUT=$1 OUT=$2 DATASET=$3 N=$4
shift 4
GDT=${GDT:-$(command -v gdt || echo target/release/gdt)}
read -r -a extra <<<"${SBATCH_ARGS:-}"
flags=$(printf ' %q' "$@")

pack_job=$(sbatch --parsable --job-name=gdt-pack --array="0-$((N - 1))" "${extra[@]}" \
  --wrap="$(printf '%q' "$GDT") pack $(printf '%q' "$INPUT") -o $(printf '%q' "$OUT") --part \$SLURM_ARRAY_TASK_ID/$N -j \${SLURM_CPUS_PER_TASK:-\$(nproc)}$flags")
merge_job=$(sbatch --parsable --job-name=gdt-merge --dependency="afterok:$pack_job" "${extra[@]}" \
  --wrap="$(printf '%q' "$GDT") merge $(printf '%q' "$OUT")/part-* -o $(printf '%q' "$DATASET")")
echo "packing: array job $pack_job ($N tasks); merge: job $merge_job, after all of them succeed"
