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

import os
from typing import Any, Iterator

from ._gdt import (
    Digest,
    FormatError,
    GdtError,
    LoaderError,
    SpecError,
    TransformSpec,
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
    "TransformSpec",
    "nce_loss",
    "preset",
]

DEFAULT_PRESET = "tr-distinct-ts-distinct"


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
    `audio` (torch.float32 `[B, V, mels, frames]`, z-normalised log-mel) view the loader's
    pooled buffers without a copy; the buffers go back to the pool when the last of these
    tensors (and this batch) is dropped. `meta` holds per-view `[B, V]` tensors: record,
    label (-1: none), shift, start_frame, audio_start, reversed, flip, scale, gain_log, and
    crop_box `[B, V, 4]`."""

    __slots__ = ("native", "video", "audio", "meta", "epoch", "index", "records")

    def __init__(self, native: _NativeBatch):
        import torch

        self.native = native
        self.video = torch.from_numpy(native.video())
        self.audio = torch.from_numpy(native.audio())
        self.meta = {k: torch.from_numpy(v) for k, v in native.meta().items()}
        self.epoch = native.epoch
        self.index = native.index
        self.records = native.records

    def __repr__(self) -> str:
        return (
            f"gdt.Batch(epoch={self.epoch}, index={self.index}, records={self.records}, "
            f"video={tuple(self.video.shape)}, audio={tuple(self.audio.shape)})"
        )


class Loader:
    """Batches of GDT views from a packed dataset, decoded and augmented on Rust threads.

    The batches are a pure function of (dataset, seed, batch_size x world, layout,
    augmentation): for a given global batch, global step k holds the same records and views
    for any world size (elastic determinism, as in `gdt train`). `rank` and `world` default
    to torch.distributed's when it is initialised, else to RANK / WORLD_SIZE.

    `preset` sets the view layout a spec needs (shifts per record, reversed views); or give
    `shifts` and `reversal`. `crop` scales the reference's scale jitter with it.
    `epochs` counts from epoch 0, also when resuming; `state_dict()` /
    `Loader(..., state=...)` resume exactly, mid-epoch included.

    Not for torch DataLoader worker processes: a forked copy raises with what to do instead.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        batch_size: int = 8,
        threads: int | None = None,
        seed: int = 0,
        epochs: int = 1,
        preset: str | None = None,
        shifts: int | None = None,
        reversal: bool | None = None,
        rank: int | None = None,
        world: int | None = None,
        clip: int = 30,
        crop: int = 112,
        state: dict[str, int] | None = None,
        **options: Any,
    ):
        if preset is not None and (shifts is not None or reversal is not None):
            raise ValueError("give a preset or shifts/reversal, not both")
        _, p_shifts, p_reversal = TransformSpec.preset(preset or DEFAULT_PRESET)
        shifts = p_shifts if shifts is None else shifts
        reversal = p_reversal if reversal is None else reversal
        if rank is None or world is None:
            d_rank, d_world = _default_rank_world()
            rank = d_rank if rank is None else rank
            world = d_world if world is None else world
        resume = None if state is None else (int(state["epoch"]), int(state["batch"]))
        if resume is not None and resume[0] >= epochs:
            raise ValueError(f"state {state} is past the last of epochs={epochs}")
        self._native = _NativeLoader(
            os.fspath(path),
            batch_size=batch_size,
            threads=threads,
            seed=seed,
            # Counted from epoch 0 here, from the start epoch natively.
            epochs=epochs - (resume[0] if resume else 0),
            shifts=shifts,
            reversal=reversal,
            rank=rank,
            world=world,
            clip=clip,
            crop=crop,
            state=resume,
            **options,
        )
        self.rank, self.world = rank, world

    def __iter__(self) -> Iterator[Batch]:
        return self

    def __next__(self) -> Batch:
        native = self._native.next_batch()
        if native is None:
            raise StopIteration
        return Batch(native)

    def state_dict(self) -> dict[str, int]:
        """Where the loader is: the next batch it would yield. Give it back as `state=` to
        continue with exactly the batches this loader would have yielded."""
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


def nce_loss(video_emb, audio_emb, batch: Batch, spec: TransformSpec, temperature: float = 0.07):
    """GDT-NCE of a batch (the paper's formula over the spec's masks):

        L = -1/P sum_{s,t} c w log( exp(<z_s, z_t>/rho) / sum_u w(s,u) exp(<z_s, z_u>/rho) )

    `video_emb`, `audio_emb`: `[N, d]` embeddings of the batch's N views (records x views,
    record-major, as `batch.video` lays them out), L2-normalised by the caller. Rows are
    video then audio, as the masks are. Computed in float32 whatever autocast did.
    """
    import torch

    c, w = spec.masks(batch.native)
    z = torch.cat([video_emb, audio_emb], 0).float()
    c = torch.from_numpy(c).to(z.device)
    w = torch.from_numpy(w).to(z.device)
    logits = z @ z.t() / temperature
    log_denominator = torch.logsumexp(logits.masked_fill(w == 0, float("-inf")), dim=1, keepdim=True)
    positive = c * w
    log_p = (logits - log_denominator).masked_fill(positive == 0, 0.0)
    return -(positive * log_p).sum() / positive.sum()
