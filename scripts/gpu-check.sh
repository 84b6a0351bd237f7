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

echo
echo "gpu-check: all checks passed"
