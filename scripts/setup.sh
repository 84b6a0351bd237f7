#!/usr/bin/env bash
# Installs what gdt needs to build and test on Debian 12, and nothing that is already there:
# FFmpeg's -dev libraries, clang/libclang (bindgen), pkg-config, Gloo's headers (the
# trainer's c10d shim; Gloo's code is in libtorch), a font that labels the
# figures (`gdt preview`, the training plot), a project-local Python
# venv with torch==2.11.0 that tch uses as libtorch, and Garage, the S3-compatible server
# the object-storage tests run against. Idempotent and quick when done.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.11.0
VENV=.venv
APT_PACKAGES=(
  build-essential pkg-config clang libclang-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
  libavfilter-dev libavdevice-dev
  libgloo-dev
  python3 python3-venv
  fonts-dejavu-core
)

say() { printf 'setup: %s\n' "$*" >&2; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  say "installing apt packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    say "adding the rust component $component"
    rustup component add "$component"
  fi
done

stamp="$VENV/.gdt-torch-$TORCH_VERSION"
if [ ! -f "$stamp" ]; then
  say "creating $VENV with torch==$TORCH_VERSION (about 2.7 GB to download, 4.6 GB installed)"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "torch==$TORCH_VERSION"
  "$VENV/bin/python" - <<PY
import torch
assert torch.__version__.split("+")[0] == "$TORCH_VERSION", torch.__version__
PY
  # torch-sys caches where libtorch was; a new venv must be found again.
  cargo clean --quiet -p torch-sys 2>/dev/null || true
  cargo clean --quiet --release -p torch-sys 2>/dev/null || true
  touch "$stamp"
fi

# The Python package's build and test tools (maturin builds it, pytest runs its tests) and
# torchvision for examples/train_torch.py (0.26.0 is the release built for torch 2.11.0).
py_stamp="$VENV/.gdt-python-tools-1"
if [ ! -f "$py_stamp" ]; then
  say "adding maturin, pytest and torchvision==0.26.0 to $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "maturin>=1.7,<2" "pytest>=8" "torchvision==0.26.0"
  touch "$py_stamp"
fi

# Headers the NCCL build of the c10d shim needs (`make gpu-build`) that torch's own nvidia
# packages leave out; small, and pinned to the CUDA 13.0 torch 2.11.0 is built with.
nccl_stamp="$VENV/.gdt-cuda-headers-13.0"
if [ ! -f "$nccl_stamp" ]; then
  say "adding CUDA crt and cccl headers to $VENV (for the NCCL build)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "nvidia-cuda-crt==13.0.*" "nvidia-cuda-cccl==13.0.*"
  touch "$nccl_stamp"
fi

# Garage (AGPL), the S3-compatible server the object-storage tests start on 127.0.0.1
# (scripts/s3-test-server.sh): a separate program, never linked into gdt. Built once from
# crates.io with only what a one-node test server needs: about 8-10 minutes on 2 cores.
GARAGE_VERSION=2.5.0
if ! { command -v garage || ls "$HOME/.cargo/bin/garage"; } >/dev/null 2>&1; then
  say "building garage $GARAGE_VERSION for the object-storage tests (once; about 10 minutes on 2 cores)"
  cargo install --quiet --locked garage --version "$GARAGE_VERSION" --no-default-features --features bundled-libs,sqlite
fi
