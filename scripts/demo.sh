#!/usr/bin/env bash
# The end-to-end demo on the built-in synthetic corpus. `make demo` builds first.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${GDT_DEMO_DIR:-demo}
GDT=${GDT:-target/release/gdt}
step() { printf '\n== %s\n' "$*"; }

step "gdt info: what this build and machine can do"
"$GDT" info

step "gdt synth: a small synthetic audio-visual corpus in $OUT/corpus"
"$GDT" synth -o "$OUT/corpus" --count 24 --seed 7 --max-seconds 8 \
  --containers mp4,mkv,avi --vfr 0.2 --force

step "manifest (first lines)"
head -n 5 "$OUT/corpus/manifest.csv"

printf '\nDemo done. Packing, loading, training and evaluation join this demo as they are built.\n'
