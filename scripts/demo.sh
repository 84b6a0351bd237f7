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

step "gdt train: GDT-NCE, distinct to time shift and reversal (GPU if present, else a small CPU model)"
# On CUDA: the full model. On a CPU the full model is far too slow for a demo, so the run
# shrinks channels, clip length and crop; it still trains the real architecture and loss.
rm -rf "$OUT/run"
if "$GDT" info | grep -q '^  cuda *yes'; then
  "$GDT" train "$OUT/dataset" --run-dir "$OUT/run" --steps 300 \
    --set optim.warmup_steps=20 --set run.checkpoint_every=100
else
  "$GDT" train "$OUT/dataset" --run-dir "$OUT/run" --steps "${GDT_DEMO_STEPS:-150}" \
    --set data.batch_size=4 --set data.clip=16 --set data.crop=64 \
    --set data.scale_min=73 --set data.scale_max=91 --set model.width=0.25 \
    --set optim.lr=0.02 --set loss.temperature=0.1 \
    --set optim.warmup_steps=20 --set run.checkpoint_every=100
fi

step "gdt eval: the trained encoders against the same architecture at random initialisation"
"$GDT" eval --checkpoint "$OUT/run" --data "$OUT/dataset" --compare random --clips 4 -o "$OUT/eval.json"

printf '\nDemo done.\n'
printf '  dataset       %s/dataset\n' "$OUT"
printf '  preview       %s/record0.png\n' "$OUT"
printf '  loss plot     %s/run/plot.png\n' "$OUT"
printf '  training log  %s/run/log.jsonl\n' "$OUT"
printf '  evaluation    %s/eval.json\n' "$OUT"
