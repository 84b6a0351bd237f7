"""gdt for PyTorch: read packed datasets at the loader's full speed, with the same
determinism, resume and rank slicing as gdt's own trainer, and train on the GDT-NCE loss of a
transformation spec.

    import gdt
    loader = gdt.Loader("dataset", batch_size=8, threads=8, preset="tr-distinct-ts-distinct")
    spec = gdt.preset("tr-distinct-ts-distinct")
    for batch in loader:
        video = batch.video.cuda(non_blocking=True)   # uint8 [B, V, 3, T, H, W], no copy
        audio = batch.audio.cuda(non_blocking=True)   # float32 [B, V, mels, frames]
        loss = gdt.nce_loss(video_model(...), audio_model(...), batch, spec)

The worker threads are Rust's; the package links gdt's pipeline, never libtorch, so any torch
build works. torch is imported when a batch is made, not before.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterator

from ._gdt import (
    Digest,
    FormatError,
    GdtError,
    LoaderError,
    SpecError,
    TransformSpec,
    loader_defaults,
)
from ._gdt import Batch as _NativeBatch
from ._gdt import Loader as _NativeLoader

__all__ = [
    "Batch",
    "Digest",
    "FormatError",
    "GdtError",
    "Loader",
    "LoaderError",
    "SpecError",
    "LOADER_DEFAULTS",
    "TransformSpec",
    "masks",
    "nce_loss",
    "nce_loss_with_masks",
    "preset",
]

DEFAULT_PRESET = "tr-distinct-ts-distinct"

# The loader's settings and their defaults come from the native module (the pipeline's
# LoaderSettings, the reference setup): the same as `gdt train`'s [data] and `gdt bench load`'s.
LOADER_DEFAULTS: dict[str, Any] = json.loads(loader_defaults())


def preset(name: str) -> TransformSpec:
    """The spec of a named experiment (`TransformSpec.preset_names()` lists them)."""
    return TransformSpec.preset(name)[0]


def _default_rank_world() -> tuple[int, int]:
    """torch.distributed's rank and world size when it is initialised, else torchrun's
    RANK and WORLD_SIZE, else a single process."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except ImportError:
        pass
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class Batch:
    """A ready batch. `video` (torch.uint8 `[B, V, 3, T, H, W]`, RGB, not normalised) and
    `audio` (torch.float32 `[B, V, mels, frames]`, z-normalised log-mel): on the CPU they view
    the loader's pooled buffers without a copy (the buffers go back to the pool when the last
    of these tensors, and this batch, is dropped); with `Loader(device=...)` they are on that
    device. `meta` holds per-view `[B, V]` tensors: record, label (-1: none), shift,
    start_frame, audio_start, reversed, flip, scale, gain_log, and crop_box `[B, V, 4]`;
    `views` is what `TransformSpec.masks` and `nce_loss` read."""

    __slots__ = ("native", "views", "video", "audio", "meta", "epoch", "index", "records")

    def __init__(self, native: _NativeBatch, video=None, audio=None, keep_native: bool = True):
        import torch

        # On a device the batch keeps no host buffer: they go back to the loader once copied.
        self.native = native if keep_native else None
        self.views = native.views()
        self.video = torch.from_numpy(native.video()) if video is None else video
        self.audio = torch.from_numpy(native.audio()) if audio is None else audio
        self.meta = {k: torch.from_numpy(v) for k, v in self.views.meta().items()}
        self.epoch = native.epoch
        self.index = native.index
        self.records = native.records

    def __repr__(self) -> str:
        return (
            f"gdt.Batch(epoch={self.epoch}, index={self.index}, records={self.records}, "
            f"video={tuple(self.video.shape)}, audio={tuple(self.audio.shape)}, "
            f"device={self.video.device})"
        )


class _PinnedHost:
    """Page-locked blocks from torch's host allocator for the native loader's batch buffers
    (it allocates all of them when it starts): copies from them to a GPU run asynchronously."""

    def __init__(self):
        self._blocks: dict[int, Any] = {}

    def allocate(self, nbytes: int) -> int:
        import torch

        block = torch.empty(max(nbytes, 1), dtype=torch.uint8, pin_memory=True)
        self._blocks[block.data_ptr()] = block
        return block.data_ptr()

    def free(self, address: int) -> None:
        self._blocks.pop(address, None)


class _CudaStreams:
    """What `_ToDevice` asks of CUDA: a side stream, events, waits. Tests give a stand-in
    with the same methods, so every branch of `_ToDevice` also runs on a CPU."""

    def __init__(self, device):
        import torch

        self.torch = torch
        self.device = device

    def new_stream(self):
        return self.torch.cuda.Stream(self.device)

    def on(self, stream):
        return self.torch.cuda.stream(stream)

    def copy(self, tensor):
        return tensor.to(self.device, non_blocking=True)

    def record(self, stream):
        event = self.torch.cuda.Event()
        event.record(stream)
        return event

    def wait(self, event, tensors) -> None:
        current = self.torch.cuda.current_stream(self.device)
        current.wait_event(event)
        for t in tensors:  # allocated on the side stream, used on this one
            t.record_stream(current)

    def done(self, event) -> bool:
        return event.query()

    def synchronize(self, event) -> None:
        event.synchronize()


class _ToDevice:
    """Batches copied to a device on a side stream, `depth` ahead of use (FFCV's `ToDevice`,
    DALI's GPU outputs): the host buffers are page-locked, so a copy never blocks; a batch
    handed out makes the current stream wait for its copy (on the device, not the host); a
    host buffer goes back to the loader only once its copy has finished."""

    def __init__(self, streams, depth: int):
        from collections import deque

        self.s = streams
        self.depth = max(depth, 1)
        self.stream = streams.new_stream()
        self.ready = deque()  # (Batch on the device, event): in order
        self.copying = []  # (event, native batch): host buffers a copy may still read

    def push(self, native: _NativeBatch) -> None:
        with self.s.on(self.stream):
            video = self.s.copy(_torch_view(native.video()))
            audio = self.s.copy(_torch_view(native.audio()))
            event = self.s.record(self.stream)
        self.ready.append((Batch(native, video, audio, keep_native=False), event))
        self.copying.append((event, native))

    def full(self) -> bool:
        return len(self.ready) >= self.depth

    def pop(self) -> Batch:
        batch, event = self.ready.popleft()
        self.s.wait(event, (batch.video, batch.audio))
        self.release()
        return batch

    def release(self) -> None:
        """Gives back the host buffers whose copy has finished."""
        self.copying = [(e, n) for e, n in self.copying if not self.s.done(e)]

    def close(self) -> None:
        for event, _ in self.copying:
            self.s.synchronize(event)
        self.copying.clear()
        self.ready.clear()


def _torch_view(array):
    import torch

    return torch.from_numpy(array)


def _device(device) -> Any:
    """`device` as a torch device; "cuda" is this rank's GPU (LOCAL_RANK, as torchrun sets
    it), or the current one. Asking for CUDA where torch sees none is an error."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"gdt.Loader(device={str(device)!r}): torch sees no CUDA device here "
                "(torch.cuda.is_available() is False); use device='cpu'"
            )
        if device.index is None:
            local = os.environ.get("LOCAL_RANK")
            device = torch.device("cuda", int(local) if local is not None else torch.cuda.current_device())
    elif device.type != "cpu":
        raise ValueError(f"gdt.Loader(device={str(device)!r}): only 'cpu' and 'cuda' are supported")
    return device


class Loader:
    """Batches of GDT views from a packed dataset, decoded and augmented on Rust threads.

    The batches are a pure function of (dataset, seed, batch_size x world, layout,
    augmentation): for a given global batch, global step k holds the same records and views
    for any world size (elastic determinism, as in `gdt train`). `rank` and `world` default
    to torch.distributed's when it is initialised, else to RANK / WORLD_SIZE.

    `preset` sets the view layout a spec needs (shifts per record, reversed views); or give
    `shifts` and `reversal`. `crop` scales the reference's scale jitter with it. Every other
    setting of `LOADER_DEFAULTS` (scale_min, scale_max, color_jitter, prefetch, min_gap,
    strict, splits, cache_dir, cache_gib) is a keyword argument too; `settings` is what the
    loader was built with.
    `epochs` counts from epoch 0, also when resuming; `state_dict()` /
    `Loader(..., state=...)` resume exactly, mid-epoch included.

    `path` is a directory or an object-store URL (`s3://bucket/k400`, `gs://`, `az://`;
    credentials, region and endpoint from the `AWS_*` variables): the batches are the same
    as from a local copy. `cache_dir` keeps a remote dataset's shards on local disk for
    later runs (`cache_gib` bounds it; default: half the free space).

    `device="cuda"` (this rank's GPU: `cuda:LOCAL_RANK`) yields batches already on the GPU:
    the loader writes into page-locked memory, and each batch is copied on a side stream
    `prefetch` batches ahead of use, so the training loop never waits for a transfer.

    Not for torch DataLoader worker processes: a forked copy raises with what to do instead.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        batch_size: int = LOADER_DEFAULTS["batch_size"],
        threads: int | None = LOADER_DEFAULTS["threads"],
        seed: int = 0,
        epochs: int = 1,
        preset: str | None = None,
        shifts: int | None = None,
        reversal: bool | None = None,
        rank: int | None = None,
        world: int | None = None,
        clip: int = LOADER_DEFAULTS["clip"],
        crop: int = LOADER_DEFAULTS["crop"],
        state: dict[str, int] | None = None,
        drop_last: bool = True,
        device: Any = "cpu",
        **options: Any,
    ):
        if preset is not None and (shifts is not None or reversal is not None):
            raise ValueError("give a preset or shifts/reversal, not both")
        unknown = set(options) - set(LOADER_DEFAULTS)
        if unknown:
            raise TypeError(f"gdt.Loader got unknown settings {sorted(unknown)}; "
                            f"settings: {sorted(LOADER_DEFAULTS)}")
        _, p_shifts, p_reversal = TransformSpec.preset(preset or DEFAULT_PRESET)
        settings = dict(LOADER_DEFAULTS, **options)
        if settings["cache_dir"] is not None:
            settings["cache_dir"] = os.fspath(settings["cache_dir"])
        settings.update(
            batch_size=batch_size,
            threads=threads,
            shifts=p_shifts if shifts is None else shifts,
            reversal=p_reversal if reversal is None else reversal,
            clip=clip,
            crop=crop,
        )
        if rank is None or world is None:
            d_rank, d_world = _default_rank_world()
            rank = d_rank if rank is None else rank
            world = d_world if world is None else world
        resume = None if state is None else (int(state["epoch"]), int(state["batch"]))
        if resume is not None and resume[0] >= epochs:
            raise ValueError(f"state {state} is past the last of epochs={epochs}")
        self.device = _device(device)
        on_gpu = self.device.type == "cuda"
        self._to_device = _ToDevice(_CudaStreams(self.device), settings["prefetch"]) if on_gpu else None
        self._native = _NativeLoader(
            os.fspath(path),
            json.dumps(settings),
            seed=seed,
            # Counted from epoch 0 here, from the start epoch natively.
            epochs=epochs - (resume[0] if resume else 0),
            rank=rank,
            world=world,
            drop_last=drop_last,
            state=resume,
            host_memory=_PinnedHost() if on_gpu else None,
        )
        self.rank, self.world = rank, world
        self.settings = settings

    def __iter__(self) -> Iterator[Batch]:
        return self

    def __next__(self) -> Batch:
        if self._to_device is None:
            native = self._native.next_batch()
            if native is None:
                raise StopIteration
            return Batch(native)
        while not self._to_device.full():
            native = self._native.next_batch()
            if native is None:
                break
            self._to_device.push(native)
        if not self._to_device.ready:
            raise StopIteration
        return self._to_device.pop()

    def state_dict(self) -> dict[str, int]:
        """Where the loader is: the next batch it would yield. Give it back as `state=` to
        continue with exactly the batches this loader would have yielded."""
        if self._to_device is not None and self._to_device.ready:
            first = self._to_device.ready[0][0]  # copied ahead, not yet handed out
            return {"epoch": first.epoch, "batch": first.index}
        epoch, batch = self._native.state()
        return {"epoch": epoch, "batch": batch}

    def __len__(self) -> int:
        """Batches per epoch for this rank."""
        return self._native.batches_per_epoch()

    @property
    def shape(self) -> dict[str, int]:
        """views, clip, crop, mels, audio_frames."""
        return self._native.shape()

    def skipped(self) -> list[str]:
        """Records left out as damaged so far (each with its shard and cause)."""
        return self._native.skipped()

    def buffer_allocations(self) -> int:
        """Buffers the batch pool has allocated so far: constant once batches are recycled."""
        return self._native.buffer_allocations()

    def close(self) -> None:
        """Stops and joins the loader's threads (also done when it is garbage-collected)."""
        if self._to_device is not None:
            self._to_device.close()
        self._native.close()

    def __enter__(self) -> "Loader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self):
        raise TypeError(
            "gdt.Loader cannot be pickled into worker processes (torch DataLoader with "
            "num_workers > 0 and the spawn start method): iterate it directly in the training "
            "process; it already runs its own threads (threads=N)."
        )


def masks(batch: Batch, spec: TransformSpec, device=None):
    """The c (positive pairs) and w (pairs taking part) masks of `batch` under `spec`, as
    float32 `[2N, 2N]` tensors on `device` (rows: the N views' video, then their audio)."""
    import torch

    c, w = spec.masks(batch.views)
    return torch.from_numpy(c).to(device), torch.from_numpy(w).to(device)


def nce_loss(video_emb, audio_emb, batch: Batch, spec: TransformSpec, temperature: float = 0.07):
    """GDT-NCE of a batch (the paper's formula over the spec's masks):

        L = -1/P sum_{s,t} c w log( exp(<z_s, z_t>/rho) / sum_u w(s,u) exp(<z_s, z_u>/rho) )

    `video_emb`, `audio_emb`: `[N, d]` embeddings of the batch's N views (records x views,
    record-major, as `batch.video` lays them out), L2-normalised by the caller. Rows are
    video then audio, as the masks are. Computed in float32 whatever autocast did.
    """
    c, w = masks(batch, spec, video_emb.device)
    return nce_loss_with_masks(video_emb, audio_emb, c, w, temperature)


def nce_loss_with_masks(video_emb, audio_emb, c, w, temperature: float = 0.07):
    """`nce_loss` from masks computed beforehand (`gdt.masks`): only tensors, so a compiled
    training step (`torch.compile`) holds the whole loss."""
    import torch

    z = torch.cat([video_emb, audio_emb], 0).float()
    logits = z @ z.t() / temperature
    log_denominator = torch.logsumexp(logits.masked_fill(w == 0, float("-inf")), dim=1, keepdim=True)
    positive = c * w
    log_p = (logits - log_denominator).masked_fill(positive == 0, 0.0)
    return -(positive * log_p).sum() / positive.sum()
