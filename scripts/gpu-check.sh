#!/usr/bin/env bash
# GPU checks for a node that has PyTorch 2.11 but no Rust toolchain and no FFmpeg.
#
# Usage: scripts/gpu-check.sh [path/to/gdt]
# The gdt binary is built elsewhere without FFmpeg (`make gpu-build`) and carried here; this
# script points the dynamic loader at this machine's libtorch and runs every GPU check, with
# PyTorch's own figures for the same model in the same run (benches/torch_reference.py).
# Exit status 0 only if every check passed and every target was met. See docs/GPU.md.
#
# Sized for 8 minutes of a lent H200, cold start included (about 5 minutes of checks).
# GPU_CHECK_DEVICE=cpu GPU_CHECK_SMALL=1 GPU_CHECK_TARGETS=0 runs the same plumbing on a CPU
# in a few minutes (tiny model and clips, no targets), to check the script itself.
set -euo pipefail

GDT=${1:-${GDT:-target/gpu/release/gdt}}
PYTHON=${PYTHON:-python3}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
TARGETS=${GPU_CHECK_TARGETS:-1}
STEPS=${GPU_CHECK_STEPS:-150}
DP_STEPS=${GPU_CHECK_DP_STEPS:-60}
WARMUP_STEPS=20
here=$(cd "$(dirname "$0")/.." && pwd)

torch_lib=$("$PYTHON" -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),"lib"))')
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# The model and clips: the real thing, or (GPU_CHECK_SMALL) a 1/16-width model on 8x32x32
# clips for a dry run of this script on a CPU.
TRAIN_SIZE=(--set data.batch_size=8)
REF_SIZE=()
if [ -n "${GPU_CHECK_SMALL:-}" ]; then
  TRAIN_SIZE=(--set data.batch_size=2 --set data.clip=8 --set data.crop=32 --set model.width=0.0625)
  REF_SIZE=(--records 2 --clip 8 --crop 32 --mels 40 --audio-frames 26 --steps 3 --warmup 1)
  WARMUP_STEPS=2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/gdt-gpu-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
status=0
fail() { echo "gpu-check: FAILED: $*"; status=1; }

# Every gdt command's output also goes to a log, which must hold no libtorch deprecation
# warning: they buried what users read before (tch's autocast calls, pin_memory(device)).
run_gdt() { "$GDT" "$@" 2>&1 | tee -a "$work/gdt-output.log"; return "${PIPESTATUS[0]}"; }

echo "== machine"
"$PYTHON" -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda)'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not available"
echo "libtorch: $torch_lib"
SECONDS=0

echo
echo "== gdt info --smoke (tch sees CUDA and cuDNN; conv3d fwd+bwd on each device)"
if [ "$DEVICE" = cuda ]; then run_gdt info --smoke --require-cuda; else run_gdt info --smoke; fi

echo
echo "== gdt synth --packed: 64 synthetic records of up to 6 s (257 mels), no FFmpeg"
run_gdt synth --packed -o "$work/ds" --count 64 --max-seconds 6 --seed 1 >/dev/null

summarise() { # log.jsonl label
  "$PYTHON" - "$@" "$WARMUP_STEPS" <<'PY'
import json, sys
path, label, warm = sys.argv[1], sys.argv[2], int(sys.argv[3])
rs = [json.loads(l) for l in open(path)]
steady = [r for r in rs if r["step"] > warm] or rs
t = sum(r["step_seconds"] for r in steady)
rate = sum(r["clips_per_s"] * r["step_seconds"] for r in steady) / t
wait = sum(r["data_wait"] * r["step_seconds"] for r in steady) / t
blocked = sum(r.get("all_reduce", 0) * r["step_seconds"] for r in steady) / t
mem = [r["gpu_memory_mib"] for r in rs if r["gpu_memory_mib"] is not None]
print(json.dumps({"label": label, "clips_per_s": rate, "ms_per_step": 1000 * t / len(steady),
                  "data_wait": wait, "blocked_in_collectives": blocked,
                  "peak_mib": max(mem) if mem else None, "loss_first": rs[0]["loss"], "loss_last": rs[-1]["loss"]}))
PY
}

COMMON=(--device "$DEVICE" -q --set optim.warmup_steps=$WARMUP_STEPS --set run.plot=false "${TRAIN_SIZE[@]}")

echo
echo "== gdt train: R(2+1)D-18 + ResNet-9, 8 records x 4 views = 32 clips/step, $STEPS steps, bf16, channels-last, pipelined"
run_gdt train "$work/ds" --run-dir "$work/run" --steps "$STEPS" "${COMMON[@]}" --set run.checkpoint_every="$STEPS"
summarise "$work/run/log.jsonl" "gdt train" | tee "$work/gdt.json"

echo
echo "== resume on the device: 5 more steps from the $STEPS-step checkpoint"
run_gdt train --run-dir "$work/run" --resume --steps $((STEPS + 5)) -q

echo
echo "== gdt eval on the device: the trained checkpoint against random init (2 clips per record)"
run_gdt eval --checkpoint "$work/run" --data "$work/ds" --compare random --device "$DEVICE" --clips 2 -q \
  -o "$work/eval.json" >/dev/null

# Data-parallel on the device. The machine has one GPU: NCCL runs at world size 1 (its
# collectives and DDP's reducer are all there, with nobody to talk to), and two ranks share
# the GPU over Gloo on CUDA tensors (NCCL refuses two ranks on one GPU).
free_port() { "$PYTHON" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
echo
echo "== data-parallel at world size 1 ($([ "$DEVICE" = cuda ] && echo NCCL || echo Gloo)), $DP_STEPS steps, against the same run without it"
run_gdt train "$work/ds" --run-dir "$work/run-plain" --steps "$DP_STEPS" "${COMMON[@]}" --set run.checkpoint_every="$DP_STEPS"
RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=$(free_port) \
  run_gdt train "$work/ds" --run-dir "$work/run-dp" --steps "$DP_STEPS" "${COMMON[@]}" --set run.checkpoint_every="$DP_STEPS" \
  --dist-timeout 120 || fail "data-parallel at world size 1"
summarise "$work/run-plain/log.jsonl" "plain" | tee "$work/plain.json"
summarise "$work/run-dp/log.jsonl" "data-parallel, world 1" | tee "$work/dp.json"

echo
echo "== data-parallel, 2 ranks sharing the device (Gloo): 20 steps, sync-BN, gathered negatives with gradients"
port=$(free_port)
pids=()
for r in 0 1; do
  RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    "$GDT" train "$work/ds" --run-dir "$work/run-gloo" --device "$([ "$DEVICE" = cuda ] && echo cuda:0 || echo cpu)" \
    --dist-backend gloo --steps 20 -q --dist-timeout 120 "${TRAIN_SIZE[@]}" --set data.batch_size=2 \
    --set model.sync_bn=true --set loss.global_negatives_grad=true --set run.checkpoint_every=20 --set run.plot=false \
    >>"$work/gdt-output.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a rank of the 2-rank run"; done
[ -f "$work/run-gloo/log.jsonl" ] && tail -n 1 "$work/run-gloo/log.jsonl"

echo
echo "== PyTorch on the same model (benches/torch_reference.py), input already on the device: eager, then torch.compile"
"$PYTHON" "$here/benches/torch_reference.py" --mode eager --device "$DEVICE" --steps 40 "${REF_SIZE[@]}" | tee "$work/eager.json"
"$PYTHON" "$here/benches/torch_reference.py" --mode compile --device "$DEVICE" --steps 40 --warmup 5 "${REF_SIZE[@]}" \
  | tee "$work/compile.json" || { echo "torch.compile failed (no figure)"; echo '{}' > "$work/compile.json"; }

echo
echo "== examples/train_torch.py: gdt.Loader(device=$DEVICE) feeding PyTorch, 40 steps"
# The Python package travels as the wheel `make gpu-build` leaves beside the binary.
wheel=$(ls "$(dirname "$GDT")"/../wheels/gdt-*.whl 2>/dev/null | head -n 1 || true)
if [ -n "$wheel" ]; then
  "$PYTHON" -m pip install -q --no-deps --no-index --target "$work/site" "$wheel"
  export PYTHONPATH="$work/site${PYTHONPATH:+:$PYTHONPATH}"
fi
if "$PYTHON" -c 'import gdt' 2>/dev/null; then
  "$PYTHON" "$here/examples/train_torch.py" "$work/ds" --steps 40 --log-every 20 --device "$DEVICE" \
    $([ -n "${GPU_CHECK_SMALL:-}" ] && echo "--clip 8 --crop 32 --batch-size 2") 2>&1 | tail -n 3 \
    || fail "examples/train_torch.py on $DEVICE"
else
  fail "the gdt Python package is neither installed nor beside $GDT (make gpu-build builds its wheel)"
fi

echo
echo "== figures and targets"
"$PYTHON" - "$work" "$TARGETS" <<'PY' || status=1
import json, sys
work, targets = sys.argv[1], sys.argv[2] == "1"
load = lambda n: json.load(open(f"{work}/{n}.json"))
gdt, plain, dp, eager, comp = (load(n) for n in ["gdt", "plain", "dp", "eager", "compile"])
cost = 1 - dp["clips_per_s"] / plain["clips_per_s"]
print(f"gdt train: {gdt['clips_per_s']:.1f} clips/s, {gdt['ms_per_step']:.1f} ms/step, data wait "
      f"{100 * gdt['data_wait']:.2f}%, peak {gdt['peak_mib']} MiB, loss {gdt['loss_first']:.3f} -> {gdt['loss_last']:.3f}")
print(f"PyTorch eager: {eager['clips_per_s']:.1f} clips/s; gdt is {gdt['clips_per_s'] / eager['clips_per_s']:.2f}x")
if comp.get("clips_per_s"):
    print(f"torch.compile: {comp['clips_per_s']:.1f} clips/s (compiled in {comp['warmup_s']:.0f} s); "
          f"gdt is {gdt['clips_per_s'] / comp['clips_per_s']:.2f}x")
print(f"data-parallel at world size 1: {dp['clips_per_s']:.1f} vs {plain['clips_per_s']:.1f} clips/s: costs "
      f"{100 * cost:.1f}%; blocked in collectives outside backward {100 * dp['blocked_in_collectives']:.2f}%")
failed = []
if gdt["data_wait"] >= 0.01: failed.append(f"data wait {100 * gdt['data_wait']:.2f}% is not under 1%")
if gdt["clips_per_s"] < eager["clips_per_s"]: failed.append("gdt train is slower than PyTorch eager")
if cost >= 0.03: failed.append(f"data-parallel costs {100 * cost:.1f}% (target < 3%)")
for f in failed: print(("FAILED: " if targets else "(target, not asserted) ") + f)
sys.exit(1 if failed and targets else 0)
PY

if grep -qi "deprecated" "$work/gdt-output.log"; then
  fail "gdt printed deprecation warnings:"
  grep -i "deprecated" "$work/gdt-output.log" | sort | uniq -c | head -5
fi
echo "checks took ${SECONDS} s"

# Keep the evidence when the caller gives a place for it (the device tool's $OUT).
if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then
  cp "$work/run/log.jsonl" "$OUT/train-log.jsonl"
  cp "$work/eval.json" "$OUT/eval.json"
  cp "$work/run-dp/log.jsonl" "$OUT/train-dp-log.jsonl" 2>/dev/null || true
  cat "$work"/{gdt,plain,dp,eager,compile}.json > "$OUT/figures.jsonl" 2>/dev/null || true
  cp "$work/gdt-output.log" "$OUT/gdt-output.log"
fi

if [ "$status" -ne 0 ]; then
  echo "gpu-check: a check failed or a target was missed (see FAILED lines)"
  exit 1
fi
echo
echo "gpu-check: all checks passed"
