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

step "gdt train: GDT-NCE (distinct to time shift and reversal), a small model for a short demo run"
# The full model (width 1, 30x112x112 clips) is the default; on a CPU it is far too slow
# for a demo, so this run shrinks channels, clip length and crop. On CUDA it runs there.
rm -rf "$OUT/run"
"$GDT" train "$OUT/dataset" --run-dir "$OUT/run" --steps 40 \
  --set data.batch_size=4 --set data.clip=16 --set data.crop=64 \
  --set data.scale_min=72 --set data.scale_max=90 --set model.width=0.125 \
  --set optim.warmup_steps=5 --set run.checkpoint_every=20

printf '\nDemo done: dataset in %s/dataset, preview in %s/record0.png, training run in %s/run (plot.png, log.jsonl).\n' "$OUT" "$OUT" "$OUT"
printf 'Evaluation joins this demo when it is built.\n'

