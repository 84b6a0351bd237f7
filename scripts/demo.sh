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
  --containers mp4,mkv,avi,mov,webm --vfr 0.2 --force

step "gdt pack: decode once into checksummed shards in $OUT/dataset"
"$GDT" pack "$OUT/corpus/manifest.csv" -o "$OUT/dataset" --force

step "gdt inspect"
"$GDT" inspect "$OUT/dataset"

step "gdt verify"
"$GDT" verify "$OUT/dataset"

step "gdt preview: frames above the spectrogram"
"$GDT" preview "$OUT/dataset" --record 0 -o "$OUT/record0.png"

step "gdt bench load: the loader against on-the-fly decoding and the decompress floor"
"$GDT" bench load "$OUT/dataset" --sources "$OUT/corpus" --batches 20

printf '\nDemo done: dataset in %s/dataset, preview in %s/record0.png.\n' "$OUT" "$OUT"
printf 'Training and evaluation join this demo as they are built.\n'
