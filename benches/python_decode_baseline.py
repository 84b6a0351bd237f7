#!/usr/bin/env python3
"""For the record: what a PyTorch user gets without gdt. A torch DataLoader with worker
processes over the source videos, decoding every sample with PyAV, doing the same GDT
sampling (two time shifts per record, each forward and time-reversed, a random scaled crop,
a log-magnitude spectrogram of the matching audio), against gdt.Loader on the packed
dataset of the same videos, same batch and clip geometry, in one run.

    python benches/python_decode_baseline.py MANIFEST.csv PACKED_DATASET [--workers 2] [--threads 2]

Needs PyAV (`pip install av`); not part of make test. The baseline's spectrogram is an STFT
magnitude (no mel filterbank: torchaudio is not assumed), which only flatters it.
"""

import argparse
import csv
import pathlib
import random
import time

import av
import numpy as np
import torch
import torch.nn.functional as F

import gdt

CLIP, CROP, FPS, SR = 30, 112, 30.0, 24000


class DecodeEverySample(torch.utils.data.Dataset):
    def __init__(self, paths, seed, clip, crop):
        self.paths, self.seed, self.clip, self.crop = paths, seed, clip, crop

    def __len__(self):
        return len(self.paths)

    def view(self, container, start_s, rng):
        stream = container.streams.video[0]
        container.seek(int(start_s / stream.time_base), stream=stream, backward=True, any_frame=False)
        frames = []
        for frame in container.decode(stream):
            if frame.time is not None and frame.time + 1e-6 < start_s:
                continue
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == self.clip:
                break
        while len(frames) < self.clip:
            frames.append(frames[-1])
        x = torch.from_numpy(np.stack(frames)).permute(3, 0, 1, 2).float()  # [3, T, H, W]
        short = rng.uniform(128, 160) * self.crop / 112
        h, w = x.shape[2:]
        s = short / min(h, w)
        x = F.interpolate(x, size=(max(self.crop, round(h * s)), max(self.crop, round(w * s))), mode="bilinear")
        top = rng.randrange(x.shape[2] - self.crop + 1)
        left = rng.randrange(x.shape[3] - self.crop + 1)
        return x[:, :, top:top + self.crop, left:left + self.crop].to(torch.uint8)

    def audio(self, container, start_s):
        stream = container.streams.audio[0]
        container.seek(int(start_s / stream.time_base), stream=stream, backward=True)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SR)
        need = int(self.clip / FPS * SR)
        chunks, have = [], 0
        for frame in container.decode(stream):
            for r in resampler.resample(frame):
                a = r.to_ndarray().reshape(-1)
                chunks.append(a)
                have += a.size
            if have >= need:
                break
        a = torch.from_numpy(np.concatenate(chunks)[:need] if chunks else np.zeros(need, np.float32))
        spec = torch.stft(a, 512, 240, window=torch.hann_window(512), return_complex=True).abs()
        return torch.log(spec + 1e-6)

    def __getitem__(self, i):
        rng = random.Random(self.seed * 1_000_003 + i)
        views, audios = [], []
        with av.open(str(self.paths[i])) as c:
            duration = float(c.duration or 0) / av.time_base
            for _ in range(2):  # two time shifts
                start = rng.uniform(0, max(0.0, duration - self.clip / FPS - 0.1))
                v = self.view(c, start, rng)
                a = self.audio(c, start)
                views += [v, v.flip(1)]  # forward, time-reversed
                audios += [a, a.flip(1)]
        return torch.stack(views), torch.stack(audios)


def rate(batches, n, warmup):
    it = iter(batches)
    for _ in range(warmup):
        next(it)
    clips, start = 0, time.perf_counter()
    for _ in range(n):
        video, _audio = next(it)
        clips += video.shape[0] * video.shape[1]
    return clips / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("manifest")
    p.add_argument("dataset")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--batches", type=int, default=12)
    p.add_argument("--warmup", type=int, default=2)
    a = p.parse_args()
    root = pathlib.Path(a.manifest).parent
    paths = [root / row["path"] for row in csv.DictReader(open(a.manifest))]
    epochs = (a.warmup + a.batches) * a.batch_size // len(paths) + 2
    ds = torch.utils.data.ConcatDataset([DecodeEverySample(paths, e, CLIP, CROP) for e in range(epochs)])
    dl = torch.utils.data.DataLoader(ds, batch_size=a.batch_size, num_workers=a.workers, shuffle=True,
                                     prefetch_factor=4, drop_last=True)
    baseline = rate(dl, a.batches, a.warmup)
    del dl  # its worker processes must not compete with what follows
    time.sleep(1)
    loader = gdt.Loader(a.dataset, batch_size=a.batch_size, threads=a.threads, epochs=200, clip=CLIP, crop=CROP)
    ours = rate(((b.video, b.audio) for b in loader), a.batches * 4, a.warmup)
    print(f"torch DataLoader, {a.workers} workers, PyAV per sample: {baseline:7.1f} clips/s")
    print(f"gdt.Loader, {a.threads} threads, packed:                 {ours:7.1f} clips/s ({ours / baseline:.1f}x)")


if __name__ == "__main__":
    main()
