#!/usr/bin/env python3
"""The Python loader against the Rust one, on the same dataset, settings and threads, in one
run: `gdt bench load` (Rust consumer) and a Python loop that takes each batch as torch
tensors and touches it. The goal is >= 95% of the Rust figure (docs/LOADER.md).

    python benches/python_loader.py DATASET [--threads N] [--batch-size 8] [--clip 30] [--crop 112]
"""

import argparse
import json
import os
import pathlib
import subprocess
import time

import gdt

ROOT = pathlib.Path(__file__).resolve().parents[1]


def python_clips_per_s(a) -> float:
    loader = gdt.Loader(a.dataset, batch_size=a.batch_size, threads=a.threads, clip=a.clip,
                        crop=a.crop, seed=a.seed, epochs=a.warmup + a.batches + 1)
    for _ in range(a.warmup):
        next(loader)
    clips, start = 0, time.perf_counter()
    for _ in range(a.batches):
        b = next(loader)
        # Touch the batch as a training loop would before handing it to the GPU.
        clips += b.video.shape[0] * b.video.shape[1]
        b.video[0, 0, 0, 0, 0, 0].item()
        b.audio[0, 0, 0, 0].item()
    secs = time.perf_counter() - start
    loader.close()
    return clips / secs


def rust_clips_per_s(a) -> float:
    out = subprocess.run(
        [os.environ.get("GDT_BIN", ROOT / "target" / "release" / "gdt"), "bench", "load", a.dataset,
         "--threads", str(a.threads), "--batch-size", str(a.batch_size), "--clip", str(a.clip),
         "--crop", str(a.crop), "--batches", str(a.batches), "--warmup", str(a.warmup),
         "--seed", str(a.seed), "--json"],
        check=True, capture_output=True, text=True)
    runs = json.loads(out.stdout)["scaling"]
    return next(r["clips_per_s"] for r in runs if r["threads"] == a.threads)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--clip", type=int, default=30)
    p.add_argument("--crop", type=int, default=112)
    p.add_argument("--batches", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds (this machine varies by 10%% run to run)")
    a = p.parse_args()
    py, rs = [], []
    for _ in range(a.rounds):
        rs.append(rust_clips_per_s(a))
        py.append(python_clips_per_s(a))
    median = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    print(f"rust consumer   best {max(rs):7.1f}, median {median(rs):7.1f} clips/s  "
          f"(rounds: {', '.join(f'{x:.1f}' for x in rs)})")
    print(f"python consumer best {max(py):7.1f}, median {median(py):7.1f} clips/s  "
          f"(rounds: {', '.join(f'{x:.1f}' for x in py)})")
    print(f"python / rust   best {100 * max(py) / max(rs):.1f}%, median {100 * median(py) / median(rs):.1f}%  "
          f"({a.threads} threads, batch {a.batch_size}, {a.clip}x{a.crop}x{a.crop} clips)")


if __name__ == "__main__":
    main()
