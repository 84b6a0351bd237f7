#!/usr/bin/env python3
"""GDT pretraining in plain PyTorch on a gdt-packed dataset: torchvision's R(2+1)D-18 for
video, a small audio ResNet for log-mel spectrograms, the GDT-NCE loss of a transformation
spec, DistributedDataParallel when launched by torchrun.

    python examples/train_torch.py DATASET --steps 1000               # one process
    python examples/train_torch.py DATASET --compile                  # under torch.compile
    torchrun --nproc_per_node 8 examples/train_torch.py DATASET      # one node, 8 GPUs

On CUDA: NCCL, bf16 autocast, channels-last-3d on the video encoder and channels-last on the
audio encoder (a module holding both 4-D and 5-D weights cannot take one memory format), and
batches delivered on the GPU by gdt.Loader(device="cuda"), copied from page-locked memory on
a side stream ahead of use. `--cuda-branches-on-cpu` runs those branches (channels-last and
bf16 autocast) on a CPU, which is how the test suite covers them. Every rank reads its own
share of each global batch (rank and world come from torch.distributed), so 8 ranks x batch
8 see the data one process with batch 64 would. Logs clips/s and the share of each step
spent waiting for input, getting it onto the device included.
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

    def to_channels_last(self) -> "GDTModel":
        """The layouts cuDNN is fastest with: channels-last-3d for the video encoder's 5-D
        weights, channels-last for the audio encoder's 4-D ones (PyTorch refuses one format
        for a module holding both)."""
        self.video.to(memory_format=torch.channels_last_3d)
        self.audio.to(memory_format=torch.channels_last)
        return self

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
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when there is one)")
    p.add_argument("--compile", action="store_true", help="train the model under torch.compile")
    p.add_argument("--cuda-branches-on-cpu", action="store_true",
                   help="on a CPU, run what CUDA runs: channels-last layouts and bf16 autocast")
    args = p.parse_args()

    distributed = "RANK" in os.environ
    cuda = (args.device or ("cuda" if torch.cuda.is_available() else "cpu")) == "cuda"
    if distributed:
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if distributed else 0
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if cuda else "cpu")
    fast_paths = cuda or args.cuda_branches_on_cpu  # channels-last and bf16 autocast
    if cuda:
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(args.seed)

    spec = gdt.preset(args.preset)
    model = GDTModel().to(device)
    if fast_paths:
        model.to_channels_last()
    if distributed:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-5)

    def train_step(video, audio, c, w):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast_paths):
            zv, za = model(video, audio)
        loss = gdt.nce_loss_with_masks(zv, za, c, w, args.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    step_fn = torch.compile(train_step) if args.compile else train_step

    # rank and world come from torch.distributed; epochs enough for the steps.
    probe = gdt.Loader(args.dataset, batch_size=args.batch_size, threads=1, preset=args.preset,
                       clip=args.clip, crop=args.crop)
    epochs = args.steps // max(1, len(probe)) + 1
    probe.close()
    loader = gdt.Loader(args.dataset, batch_size=args.batch_size, threads=args.threads, seed=args.seed,
                        epochs=epochs, preset=args.preset, clip=args.clip, crop=args.crop, device=device)

    step, clips, waited, started = 0, 0, 0.0, time.perf_counter()
    mark = time.perf_counter()
    while step < args.steps:
        t0 = time.perf_counter()
        batch = next(loader)  # on the device already (copied ahead on CUDA)
        video = batch.video.flatten(0, 1).float().div_(255).sub_(MEAN).div_(STD)
        audio = batch.audio.flatten(0, 1).unsqueeze(1)
        if fast_paths:
            video = video.contiguous(memory_format=torch.channels_last_3d)
            audio = audio.contiguous(memory_format=torch.channels_last)
        c, w = gdt.masks(batch, spec, device)
        waited += time.perf_counter() - t0
        loss = step_fn(video, audio, c, w)
        step += 1
        clips += batch.video.shape[0] * batch.video.shape[1] * (dist.get_world_size() if distributed else 1)
        if rank == 0 and (step % args.log_every == 0 or step == args.steps):
            value = loss.item()  # waits for the step
            now = time.perf_counter()
            print(f"step {step}: loss {value:.4f}, {clips / (now - mark):.1f} clips/s (global), "
                  f"data wait {100 * waited / (now - mark):.1f}%", flush=True)
            clips, waited, mark = 0, 0.0, now
    if rank == 0:
        print(f"done: {args.steps} steps in {time.perf_counter() - started:.1f} s", flush=True)
    loader.close()
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
