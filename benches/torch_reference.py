#!/usr/bin/env python3
"""gdt's training model in plain PyTorch, timed: the reference `gdt train` is measured
against in the same run (`scripts/gpu-check.sh` prints gdt's ratio to each mode).

The model is the trainer's exactly (36,988,637 parameters): torchvision's R(2+1)D-18 without
its classifier, the ResNet-9 audio encoder, and two projection heads (dropout 0.3, Linear no
bias, BatchNorm1d, ReLU, dropout, Linear to 256, L2 norm); the loss is GDT-NCE over the
default preset's masks (distinct to sample, time shift and reversal, cross-modal pairs); SGD
with momentum 0.9 and weight decay 1e-5; u8 video normalised on the device; bf16 autocast,
channels-last-3d video and channels-last audio on CUDA. Input is already on the device: what
is timed is the step alone.

    python benches/torch_reference.py --mode eager            # one JSON line per mode
    python benches/torch_reference.py --mode compile --steps 60
    python benches/torch_reference.py --params               # the parameter count, and exit
"""

import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

MEAN, STD = 0.45, 0.225


def basic_block(cin: int, cout: int, stride: int) -> nn.Module:
    """ResNet's BasicBlock over spectrograms, as the trainer's ResNet-9 builds it."""

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            return F.relu(y + (x if self.downsample is None else self.downsample(x)))

    return Block()


def resnet9() -> nn.Module:
    """The audio encoder: stem 7x7/2, max-pool 3/2, one BasicBlock per stage of 64/128/256/512."""
    return nn.Sequential(
        nn.Conv2d(1, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
        basic_block(64, 64, 1), basic_block(64, 128, 2), basic_block(128, 256, 2), basic_block(256, 512, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )


def head(features: int = 512, dropout: float = 0.3) -> nn.Module:
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(features, features, bias=False), nn.BatchNorm1d(features),
                         nn.ReLU(), nn.Dropout(dropout), nn.Linear(features, 256))


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.video = torchvision.models.video.r2plus1d_18(weights=None)
        self.video.fc = nn.Identity()
        self.audio = resnet9()
        self.video_head, self.audio_head = head(), head()

    def forward(self, video, audio):
        zv = F.normalize(self.video_head(self.video(video)), dim=1)
        za = F.normalize(self.audio_head(self.audio(audio)), dim=1)
        return torch.cat([zv, za], 0)


def masks(records: int, device):
    """c and w of the default preset for `records` records x (2 shifts x fwd/rev) views,
    record-major as gdt lays them out: a video row and an audio row are a positive pair when
    they are the same view; only cross-modal pairs take part."""
    views = records * 4
    view = torch.arange(views, device=device)
    same = (view[:, None] == view[None, :]).float()
    zeros = torch.zeros_like(same)
    c = torch.cat([torch.cat([same, same], 1), torch.cat([same, same], 1)], 0)
    ones = torch.ones_like(same)
    w = torch.cat([torch.cat([zeros, ones], 1), torch.cat([ones, zeros], 1)], 0)
    return c, w


def nce(z, c, w, temperature=0.07):
    logits = z.float() @ z.float().t() / temperature
    log_den = torch.logsumexp(logits.masked_fill(w == 0, float("-inf")), dim=1, keepdim=True)
    positive = c * w
    log_p = (logits - log_den).masked_fill(positive == 0, 0.0)
    return -(positive * log_p).sum() / positive.sum()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=["eager", "compile"], default="eager")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--records", type=int, default=8, help="records per step (4 views each)")
    p.add_argument("--clip", type=int, default=30)
    p.add_argument("--crop", type=int, default=112)
    p.add_argument("--mels", type=int, default=257)
    p.add_argument("--audio-frames", type=int, default=99)
    p.add_argument("--steps", type=int, default=60, help="timed steps")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first (cuDNN autotuning, compilation)")
    p.add_argument("--params", action="store_true", help="print the parameter count and exit")
    args = p.parse_args()

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    model = Model().to(device)
    params = sum(t.numel() for t in model.parameters())
    if args.params:
        print(json.dumps({"parameters": params}))
        return
    if cuda:
        torch.backends.cudnn.benchmark = True
        model.video.to(memory_format=torch.channels_last_3d)
        model.audio.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-5)
    n = args.records * 4
    video = torch.randint(0, 256, (n, 3, args.clip, args.crop, args.crop), dtype=torch.uint8, device=device)
    audio = torch.randn(n, 1, args.mels, args.audio_frames, device=device)
    c, w = masks(args.records, device)

    def step(video, audio):
        x = video.float().div(255).sub(MEAN).div(STD)
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last_3d)
            audio = audio.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            z = model(x, audio)
        loss = nce(z, c, w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    fn = torch.compile(step) if args.mode == "compile" else step
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    started = time.perf_counter()
    for _ in range(args.warmup):
        fn(video, audio)
    sync()
    warm_s = time.perf_counter() - started
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = fn(video, audio)
    sync()
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None
    print(json.dumps({
        "mode": args.mode, "device": str(device), "parameters": params, "clips_per_step": n,
        "clips_per_s": n * args.steps / seconds, "ms_per_step": 1000 * seconds / args.steps,
        "warmup_s": warm_s, "peak_gib": peak, "loss": loss.item(),
    }))


if __name__ == "__main__":
    main()
