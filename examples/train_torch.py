#!/usr/bin/env python3
"""GDT pretraining in plain PyTorch on a gdt-packed dataset: torchvision's R(2+1)D-18 for
video, a small audio ResNet for log-mel spectrograms, the GDT-NCE loss of a transformation
spec, DistributedDataParallel when launched by torchrun.

    python examples/train_torch.py DATASET --steps 1000               # one process
    torchrun --nproc_per_node 8 examples/train_torch.py DATASET      # one node, 8 GPUs

NCCL on GPUs, Gloo on CPUs; bf16 autocast and channels-last-3d on CUDA. Every rank reads its
own share of each global batch from gdt.Loader (rank and world come from torch.distributed),
so 8 ranks x batch 8 see the data one process with batch 64 would. Logs clips/s and the share
of each step spent waiting for data.
"""

import argparse
import os
import time

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
import torchvision

import gdt

MEAN, STD = 0.45, 0.225  # the reference's video normalisation


def head(features: int, dim: int) -> nn.Module:
    return nn.Sequential(nn.Linear(features, features, bias=False), nn.BatchNorm1d(features),
                         nn.ReLU(inplace=True), nn.Linear(features, dim))


def audio_resnet(width: int = 64) -> nn.Module:
    """A small ResNet-like encoder over [N, 1, mels, frames]."""
    def block(cin, cout, stride):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                             nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                             nn.BatchNorm2d(cout), nn.ReLU(inplace=True))
    return nn.Sequential(nn.Conv2d(1, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                         block(width, width, 1), block(width, 2 * width, 2), block(2 * width, 4 * width, 2),
                         block(4 * width, 8 * width, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten())


class GDTModel(nn.Module):
    def __init__(self, dim: int = 256, audio_width: int = 64):
        super().__init__()
        self.video = torchvision.models.video.r2plus1d_18(weights=None)
        self.video.fc = nn.Identity()
        self.audio = audio_resnet(audio_width)
        self.video_head = head(512, dim)
        self.audio_head = head(8 * audio_width, dim)

    def forward(self, video, audio):
        zv = F.normalize(self.video_head(self.video(video)), dim=1)
        za = F.normalize(self.audio_head(self.audio(audio)), dim=1)
        return zv, za


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=8, help="records per rank (4 views each)")
    p.add_argument("--threads", type=int, default=None, help="loader threads per rank")
    p.add_argument("--clip", type=int, default=30)
    p.add_argument("--crop", type=int, default=112)
    p.add_argument("--preset", default="tr-distinct-ts-distinct")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--temperature", type=float, default=0.07)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    distributed = "RANK" in os.environ
    cuda = torch.cuda.is_available()
    if distributed:
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if distributed else 0
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(args.seed)

    spec = gdt.preset(args.preset)
    model = GDTModel().to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last_3d)
    if distributed:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-5)

    # rank and world come from torch.distributed; epochs enough for the steps.
    probe = gdt.Loader(args.dataset, batch_size=args.batch_size, threads=1, preset=args.preset,
                       clip=args.clip, crop=args.crop)
    epochs = args.steps // max(1, len(probe)) + 1
    probe.close()
    loader = gdt.Loader(args.dataset, batch_size=args.batch_size, threads=args.threads, seed=args.seed,
                        epochs=epochs, preset=args.preset, clip=args.clip, crop=args.crop)

    step, clips, waited, started = 0, 0, 0.0, time.perf_counter()
    mark = time.perf_counter()
    while step < args.steps:
        t0 = time.perf_counter()
        batch = next(loader)
        waited += time.perf_counter() - t0
        b, v = batch.video.shape[:2]
        video = batch.video.to(device, non_blocking=True).flatten(0, 1).float().div_(255).sub_(MEAN).div_(STD)
        audio = batch.audio.to(device, non_blocking=True).flatten(0, 1).unsqueeze(1)
        if cuda:
            video = video.contiguous(memory_format=torch.channels_last_3d)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            zv, za = model(video, audio)
        loss = gdt.nce_loss(zv, za, batch, spec, args.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        clips += b * v * (dist.get_world_size() if distributed else 1)
        if rank == 0 and (step % args.log_every == 0 or step == args.steps):
            now = time.perf_counter()
            print(f"step {step}: loss {loss.item():.4f}, {clips / (now - mark):.1f} clips/s (global), "
                  f"data wait {100 * waited / (now - mark):.1f}%", flush=True)
            clips, waited, mark = 0, 0.0, now
    if rank == 0:
        print(f"done: {args.steps} steps in {time.perf_counter() - started:.1f} s", flush=True)
    loader.close()
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
