#!/usr/bin/env bash
# GPU checks for a node that has PyTorch 2.11 but no Rust toolchain and no FFmpeg.
#
# Usage: scripts/gpu-check.sh [path/to/gdt]
# The gdt binary is built elsewhere without FFmpeg (`make gpu-build`) and carried here; this
# script points the dynamic loader at this machine's libtorch and runs every GPU check.
# Exit status 0 only if every check passed. See docs/GPU.md.
set -euo pipefail

GDT=${1:-${GDT:-target/gpu/release/gdt}}
PYTHON=${PYTHON:-python3}

torch_lib=$("$PYTHON" -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),"lib"))')
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

echo "== machine"
"$PYTHON" -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda)'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not available"
echo "libtorch: $torch_lib"

echo
echo "== gdt info --smoke --require-cuda (tch sees CUDA and cuDNN; conv3d fwd+bwd on each device)"
"$GDT" info --smoke --require-cuda

# Training at full size. The figures come from the run's own log.jsonl; steps before
# WARMUP_STEPS are left out (cuDNN autotuning, allocator growth).
STEPS=${GPU_CHECK_STEPS:-200}
WARMUP_STEPS=20
work=$(mktemp -d "${TMPDIR:-/tmp}/gdt-gpu-check.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo
echo "== gdt synth --packed: 64 synthetic records of up to 6 s (257 mels), no FFmpeg"
"$GDT" synth --packed -o "$work/ds" --count 64 --max-seconds 6 --seed 1

summarise() { # log.jsonl label min_clips_per_s
  "$PYTHON" - "$@" <<'PY'
import json, sys
path, label, need = sys.argv[1], sys.argv[2], float(sys.argv[3])
rs = [json.loads(l) for l in open(path)]
steady = [r for r in rs if r["step"] > 20]
t = sum(r["step_seconds"] for r in steady)
rate = sum(r["clips_per_s"] * r["step_seconds"] for r in steady) / t
wait = sum(r["data_wait"] * r["step_seconds"] for r in steady) / t
mem = [r["gpu_memory_mib"] for r in rs if r["gpu_memory_mib"] is not None]
early = [r["gpu_memory_mib"] for r in rs if r["step"] == 50 and r["gpu_memory_mib"] is not None]
growth = (mem[-1] - early[0]) if mem and early else None
print(f"{label}: {rate:.1f} clips/s over steps 21-{rs[-1]['step']}, "
      f"{1000 * t / len(steady):.1f} ms/step, data wait {100 * wait:.2f}% of step time, "
      f"loss {rs[0]['loss']:.3f} -> {rs[-1]['loss']:.3f}")
if mem:
    print(f"{label}: GPU memory peak {max(mem):.0f} MiB; step 50 -> last: "
          + (f"{growth:+.0f} MiB" if growth is not None else "n/a"))
else:
    print(f"{label}: GPU memory not reported (no NVML)")
failed = []
if rate < need: failed.append(f"{rate:.1f} clips/s is below the {need:.0f} target")
if wait >= 0.02: failed.append(f"data wait {100 * wait:.2f}% is not under 2%")
if growth is not None and growth > 256: failed.append(f"memory grew by {growth:.0f} MiB after step 50")
for f in failed: print(f"{label}: FAILED: {f}")
sys.exit(1 if failed else 0)
PY
}

echo
echo "== gdt train: full R(2+1)D-18 + ResNet-9, 8 records x 4 views = 32 clips/step, $STEPS steps, bf16, channels-last-3d"
"$GDT" train "$work/ds" --run-dir "$work/run" --device cuda --steps "$STEPS" -q \
  --set data.batch_size=8 --set optim.warmup_steps=$WARMUP_STEPS --set run.checkpoint_every="$STEPS"
status=0
summarise "$work/run/log.jsonl" "bf16 channels-last" 300 || status=1

echo
echo "== the same with the default NCDHW layout, 60 steps (for comparison; no target)"
"$GDT" train "$work/ds" --run-dir "$work/run-ncdhw" --device cuda --steps 60 -q \
  --set data.batch_size=8 --set optim.warmup_steps=$WARMUP_STEPS --set run.checkpoint_every=60 \
  --set run.channels_last=off --set run.plot=false
summarise "$work/run-ncdhw/log.jsonl" "bf16 NCDHW" 0 || true

echo
echo "== resume on the GPU: 10 more steps from the $STEPS-step checkpoint"
"$GDT" train --run-dir "$work/run" --resume --steps $((STEPS + 10)) -q --set run.plot=false

echo
echo "== gdt eval on the GPU: the trained checkpoint against random init (10 clips per record)"
"$GDT" eval --checkpoint "$work/run" --data "$work/ds" --compare random --device cuda -q \
  -o "$work/eval.json"

# Data-parallel on the GPU. The machine has one GPU: NCCL runs at world size 1 (its
# collectives and DDP's reducer are all there, with nobody to talk to), and two ranks share
# the GPU over Gloo on CUDA tensors (NCCL refuses two ranks on one GPU).
free_port() { "$PYTHON" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
DP_STEPS=${GPU_CHECK_DP_STEPS:-80}
echo
echo "== data-parallel, NCCL, world size 1: $DP_STEPS steps, against the same run without it"
"$GDT" train "$work/ds" --run-dir "$work/run-plain" --device cuda --steps "$DP_STEPS" -q \
  --set data.batch_size=8 --set optim.warmup_steps=$WARMUP_STEPS --set run.checkpoint_every="$DP_STEPS" --set run.plot=false
RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=$(free_port) \
  "$GDT" train "$work/ds" --run-dir "$work/run-nccl" --device cuda --steps "$DP_STEPS" -q --dist-timeout 120 \
  --set data.batch_size=8 --set optim.warmup_steps=$WARMUP_STEPS --set run.checkpoint_every="$DP_STEPS" --set run.plot=false \
  || { echo "gpu-check: FAILED: NCCL at world size 1"; status=1; }
summarise "$work/run-plain/log.jsonl" "no data-parallel" 0 || true
summarise "$work/run-nccl/log.jsonl" "NCCL world 1" 0 || true
"$PYTHON" - "$work/run-plain/log.jsonl" "$work/run-nccl/log.jsonl" <<'PY' || status=1
import json, sys
def rate(path):
    rs = [json.loads(l) for l in open(path)][20:]
    return sum(r["clips_per_s"] * r["step_seconds"] for r in rs) / sum(r["step_seconds"] for r in rs), \
        sum(r.get("all_reduce", 0) * r["step_seconds"] for r in rs) / sum(r["step_seconds"] for r in rs)
(plain, _), (nccl, blocked) = rate(sys.argv[1]), rate(sys.argv[2])
cost = 1 - nccl / plain
print(f"NCCL world 1: {nccl:.1f} vs {plain:.1f} clips/s without: the distributed path costs {100 * cost:.1f}% "
      f"(target < 3%); blocked in collectives outside backward {100 * blocked:.2f}% of a step")
sys.exit(0 if cost < 0.03 else 1)
PY

echo
echo "== data-parallel, 2 ranks sharing the GPU over Gloo on CUDA tensors: 30 steps, sync-BN, gathered negatives with gradients"
port=$(free_port)
pids=()
for r in 0 1; do
  RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    "$GDT" train "$work/ds" --run-dir "$work/run-gloo" --device cuda:0 --dist-backend gloo --steps 30 -q \
    --dist-timeout 120 --set data.batch_size=4 --set model.sync_bn=true --set loss.global_negatives_grad=true \
    --set run.checkpoint_every=30 --set run.plot=false &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || { echo "gpu-check: FAILED: a Gloo-on-CUDA rank"; status=1; }; done
[ -f "$work/run-gloo/log.jsonl" ] && tail -n 1 "$work/run-gloo/log.jsonl"

# Keep the evidence when the caller gives a place for it (the device tool's $OUT).
if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then
  cp "$work/run/log.jsonl" "$OUT/train-log.jsonl"
  cp "$work/run-ncdhw/log.jsonl" "$OUT/train-ncdhw-log.jsonl"
  cp "$work/run/plot.png" "$OUT/train-plot.png" 2>/dev/null || true
  cp "$work/eval.json" "$OUT/eval.json"
  cp "$work/run-nccl/log.jsonl" "$OUT/train-nccl-log.jsonl" 2>/dev/null || true
  cp "$work/run-gloo/log.jsonl" "$OUT/train-gloo-cuda-log.jsonl" 2>/dev/null || true
fi

if [ "$status" -ne 0 ]; then
  echo "gpu-check: training missed a target (see FAILED lines)"
  exit 1
fi
echo
echo "gpu-check: all checks passed"
