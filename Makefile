# Two commands for a new user: `make demo` and `make test`. Each installs what is missing
# first (scripts/setup.sh). The venv's torch is libtorch for tch, so every cargo call here
# runs with it on PATH and LIBTORCH_USE_PYTORCH=1.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := $(CURDIR)/.venv
export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)
export LIBTORCH_USE_PYTORCH := 1
CARGO ?= cargo

.PHONY: all setup build demo test lint gpu-build python-test

all: build

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build --release

demo: build
	scripts/demo.sh

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --workspace --all-targets --no-default-features -- -D warnings

# Tests run in release: they encode and decode video and run libtorch.
# Both ways: with FFmpeg (default) and without (what GPU training nodes run). The proof of
# learning (about 5 minutes of CPU training, trainer/tests/proof_of_learning.rs) runs in the
# first pass only: it reads packed data, so nothing it touches depends on FFmpeg.
# The FFmpeg-free pass shares target/release with the first, so only the crates whose
# features differ are built twice (a separate target directory rebuilt libtorch's bindings
# and every dependency, doubling CI's time). Cargo keeps both builds of those crates side by
# side; the last line puts the full binary back at target/release/gdt (a copy, or a relink
# of the top crates, about 35 s here), so the README's commands find FFmpeg after `make test`.
test: lint
	$(CARGO) test --release --workspace
	$(CARGO) test --release --workspace --no-default-features -- --skip gdt_training_beats_random_init
	$(CARGO) build --release
	@target/release/gdt info --json | grep -q '"ffmpeg": true' || { echo "make test: target/release/gdt lost FFmpeg" >&2; exit 1; }
	$(MAKE) --no-print-directory python-test

# The Python package (python/, `import gdt`), built by maturin into the venv, and its
# pytest suite (it uses target/release/gdt to write its datasets). pytest reports its count
# and exits non-zero if it is missing or collects nothing.
python-test: setup
	python -m pip install --quiet --disable-pip-version-check --no-build-isolation ./python
	python -m pytest -ra python/tests

# The FFmpeg-free binary for GPU nodes (see docs/GPU.md), in its own target directory so
# it does not replace the default build: target/gpu/release/gdt. With NCCL for multi-GPU runs.
# Beside it, target/gpu/wheels/ holds the Python package's wheel (abi3, no libtorch inside),
# which scripts/gpu-check.sh installs there for the example.
gpu-build: setup
	$(CARGO) build --release --no-default-features --features nccl --target-dir target/gpu
	maturin build --release --quiet --manifest-path python/Cargo.toml --target-dir target/gpu --out target/gpu/wheels
