#!/usr/bin/env bash
# The end-to-end demo on the built-in synthetic corpus. `make demo` builds first.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${GDT_DEMO_DIR:-demo}
GDT=${GDT:-target/release/gdt}
step() { printf '\n== %s\n' "$*"; }

step "gdt info: what this build and machine can do"
"$GDT" info

# The corpus is sized so that the last table means something on 2 CPU cores in a few
# minutes: 160 short videos of 4 classes, 32 of them held out (the test split), objects
# three times the default size so that they survive the small frames a CPU model trains on.
step "gdt synth: a synthetic audio-visual corpus of 160 videos in $OUT/corpus"
"$GDT" synth -o "$OUT/corpus" --count 160 --seed 47 --min-seconds 3 --max-seconds 5 \
  --resolutions 160x120,192x108 --object-scale 3 \
  --containers mp4,mkv,avi,mov,webm --vfr 0.2 --force

step "gdt pack: decode once into checksummed shards in $OUT/dataset (frames 48 px high, 40 mels)"
"$GDT" pack "$OUT/corpus/manifest.csv" -o "$OUT/dataset" --short-side 48 --max-long-side 64 \
  --mels 40 --max-seconds 5 --force

step "gdt inspect"
"$GDT" inspect "$OUT/dataset"

step "gdt verify"
"$GDT" verify "$OUT/dataset"

step "gdt preview: frames above the spectrogram"
"$GDT" preview "$OUT/dataset" --record 0 -o "$OUT/record0.png"

step "gdt bench load: the loader against on-the-fly decoding and the decompress floor"
"$GDT" bench load "$OUT/dataset" --sources "$OUT/corpus" --batches 20 --clip 8 --crop 32

step "gdt train: GDT-NCE on the train split (the test split is held out), GPU if present"
# A quarter-width R(2+1)D-18 / ResNet-9 on 8-frame 32x32 clips: the real architecture and
# loss, small enough to learn in about 5 minutes on 2 CPU cores (the settings of the proof of
# learning, trainer/src/proof.rs). Cross-modal preset over two time shifts per record.
rm -rf "$OUT/run"
"$GDT" train "$OUT/dataset" --run-dir "$OUT/run" --steps "${GDT_DEMO_STEPS:-2000}" \
  --set loss.preset=cross-modal --set data.shifts=2 --set data.batch_size=4 \
  --set data.clip=8 --set data.crop=32 \
  --set model.width=0.25 --set optim.lr=0.02 --set loss.temperature=0.1 \
  --set optim.warmup_steps=10 --set run.checkpoint_every=500

step "gdt eval: on the 32 held-out records, trained encoders against the same architecture at random initialisation"
"$GDT" eval --checkpoint "$OUT/run" --data "$OUT/dataset" --compare random --clips 4 -o "$OUT/eval.json"

printf '\nDemo done.\n'
printf '  dataset       %s/dataset\n' "$OUT"
printf '  preview       %s/record0.png\n' "$OUT"
printf '  loss plot     %s/run/plot.png\n' "$OUT"
printf '  training log  %s/run/log.jsonl\n' "$OUT"
printf '  evaluation    %s/eval.json\n' "$OUT"
