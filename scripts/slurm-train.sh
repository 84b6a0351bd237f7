#!/usr/bin/env bash
# Data-parallel gdt training under Slurm, one task per rank:
#   sbatch --nodes 2 --ntasks-per-node 8 scripts/slurm-train.sh DATASET RUN_DIR [gdt train flags...]
# srun gives each task SLURM_PROCID, SLURM_NTASKS and SLURM_LOCALID; gdt takes the first host
# of SLURM_JOB_NODELIST as the rendezvous (MASTER_ADDR overrides it) on MASTER_PORT (29500).
# See docs/DISTRIBUTED.md (Gloo on CPUs; NCCL on GPUs with the `make gpu-build` binary).
#SBATCH --job-name=gdt-train
#SBATCH --time=24:00:00
set -euo pipefail
DATASET=$1
RUN_DIR=$2
shift 2
GDT=${GDT:-target/release/gdt}
export MASTER_PORT=${MASTER_PORT:-29500}
exec srun "$GDT" train "$DATASET" --run-dir "$RUN_DIR" "$@"
