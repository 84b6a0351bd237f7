"""gdt.Loader: shapes, the same bytes as the Rust loader, zero copy, buffer reuse, resume,
rank slices, errors, the GIL, Ctrl-C and forks."""

import json
import os
import pickle
import signal
import subprocess
import threading
import time

import pytest
import torch

import gdt

SMALL = dict(batch_size=4, threads=2, clip=8, crop=32)


def digest(batches) -> str:
    d = gdt.Digest()
    for b in batches:
        d.update(b.video.numpy().tobytes())
        d.update(b.audio.numpy().tobytes())
    return d.hexdigest()


def test_batches_have_the_documented_shapes_and_types(dataset):
    loader = gdt.Loader(dataset, **SMALL)
    b = next(loader)
    assert loader.shape["views"] == 4  # the default preset: 2 shifts x forward/reversed
    assert b.video.dtype == torch.uint8 and b.audio.dtype == torch.float32
    assert tuple(b.video.shape) == (4, 4, 3, 8, 32, 32)
    assert tuple(b.audio.shape) == (4, 4, 40, loader.shape["audio_frames"])
    assert b.meta["record"].shape == (4, 4) and b.meta["crop_box"].shape == (4, 4, 4)
    # Record-major views: each record's 4 views are 2 shifts x (forward, reversed).
    assert b.meta["reversed"][0].tolist() == [False, True, False, True]
    assert b.meta["shift"][0].tolist() == [0, 0, 1, 1]
    assert len(loader) == 4  # 16 records / 4
    loader.close()


def test_batches_are_the_rust_loaders_bytes(dataset, gdt_bin):
    warmup, batches = 2, 5
    out = subprocess.run(
        [gdt_bin, "bench", "load", dataset, "--batches", str(batches), "--warmup", str(warmup),
         "--batch-size", "4", "--clip", "8", "--crop", "32", "--threads", "2", "--seed", "5",
         "--digest", "--json"],
        check=True, capture_output=True, text=True,
    )
    want = {run["digest"] for run in json.loads(out.stdout)["scaling"]}
    assert len(want) == 1, want  # the same bytes for 1 and 2 threads
    loader = gdt.Loader(dataset, seed=5, epochs=warmup + batches + 1, **SMALL)
    for _ in range(warmup):
        next(loader)
    assert digest(next(loader) for _ in range(batches)) == want.pop()


def test_tensors_view_the_loaders_buffers_and_steady_state_allocates_nothing(dataset):
    loader = gdt.Loader(dataset, epochs=30, **SMALL)
    b = next(loader)
    assert b.video.data_ptr() == b.native.video_address()
    assert b.audio.data_ptr() == b.native.audio_address()
    seen = {b.video.data_ptr()}
    del b
    for _ in range(40):  # let the pool fill: workers run up to `prefetch` batches ahead
        next(loader)
    before = loader.buffer_allocations()
    for _ in range(60):
        b = next(loader)
        seen.add(b.video.data_ptr())
        del b
    assert loader.buffer_allocations() == before
    # A handful of buffers circulate (prefetch depth + workers + the one in hand), not 60.
    assert len(seen) <= 8, len(seen)


def test_a_tensor_kept_alive_keeps_its_buffer(dataset):
    loader = gdt.Loader(dataset, epochs=20, **SMALL)
    b = next(loader)
    video = b.video
    copy = video.clone()
    del b
    for _ in range(20):  # other batches must not reuse the buffer `video` still views
        next(loader)
    assert torch.equal(video, copy)


def test_state_dict_resumes_with_the_same_batches(dataset):
    loader = gdt.Loader(dataset, seed=9, epochs=3, **SMALL)
    for _ in range(5):  # mid-epoch 1
        next(loader)
    state = loader.state_dict()
    assert state == {"epoch": 1, "batch": 1}
    rest = digest(loader)
    resumed = gdt.Loader(dataset, seed=9, epochs=3, state=state, **SMALL)
    assert digest(resumed) == rest


def test_ranks_take_disjoint_shares_of_the_same_global_batches(dataset):
    def records(**kw):
        loader = gdt.Loader(dataset, seed=2, threads=1, clip=8, crop=32, **kw)
        return [b.meta["record"][:, 0].tolist() for b in loader]

    whole = records(batch_size=4, rank=0, world=1)
    r0 = records(batch_size=2, rank=0, world=2)
    r1 = records(batch_size=2, rank=1, world=2)
    assert [a + b for a, b in zip(r0, r1)] == whole


def test_rank_and_world_default_to_torchruns_variables(dataset, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    loader = gdt.Loader(dataset, **SMALL)
    assert (loader.rank, loader.world) == (1, 2)
    assert len(loader) == 2


def test_errors_are_typed_and_name_the_cause(dataset, tmp_path):
    with pytest.raises(gdt.FormatError, match="dataset.json"):
        gdt.Loader(tmp_path / "missing", **SMALL)
    with pytest.raises(gdt.LoaderError, match="batch"):
        gdt.Loader(dataset, batch_size=64, threads=1, clip=8, crop=32)
    with pytest.raises(gdt.SpecError, match="nope"):
        gdt.preset("nope")
    with pytest.raises(gdt.SpecError):
        gdt.TransformSpec({"colour": "distinct"})
    assert issubclass(gdt.FormatError, gdt.GdtError)


def test_a_damaged_record_is_skipped_and_reported(dataset, tmp_path, gdt_bin):
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(dataset, damaged)
    shard = next(damaged.glob("*.gdt"))
    data = bytearray(shard.read_bytes())
    # Every 4 KiB over a tenth of the file: a record or two whose every blob is hit.
    for i in range(len(data) * 45 // 100, len(data) * 55 // 100, 4096):
        data[i] ^= 0xFF
    shard.write_bytes(bytes(data))
    loader = gdt.Loader(damaged, **SMALL)
    batches = list(loader)
    assert loader.skipped(), "the damaged record is reported"
    assert "record" in loader.skipped()[0]
    assert sum(b.records for b in batches) < 16


def test_waiting_for_a_batch_releases_the_gil(dataset):
    loader = gdt.Loader(dataset, batch_size=8, threads=1, clip=30, crop=64, prefetch=1, epochs=3)
    ticks = 0
    stop = False

    def count():
        nonlocal ticks
        while not stop:
            ticks += 1

    t = threading.Thread(target=count)
    t.start()
    try:
        blocked = []
        for _ in range(4):
            start, before = time.perf_counter(), ticks
            next(loader)
            blocked.append((time.perf_counter() - start, ticks - before))
    finally:
        stop = True
        t.join()
    # While the main thread waited for the Rust workers, the other thread kept counting.
    waited, counted = max(blocked)
    assert waited > 0.005 and counted > 1000, blocked


def test_ctrl_c_interrupts_a_blocked_wait(dataset):
    loader = gdt.Loader(dataset, batch_size=8, threads=1, clip=30, crop=112, prefetch=1, epochs=50)
    next(loader)
    timer = threading.Timer(0.01, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        for _ in range(100):
            next(loader)
    assert time.perf_counter() - start < 5.0
    timer.join()
    loader.close()


def test_a_forked_copy_refuses_with_what_to_do_and_pickling_is_refused(dataset):
    loader = gdt.Loader(dataset, **SMALL)
    with pytest.raises(TypeError, match="iterate it directly"):
        pickle.dumps(loader)
    pid = os.fork()
    if pid == 0:
        try:
            next(loader)
            os._exit(2)
        except RuntimeError as e:
            os._exit(0 if "fork" in str(e) and "directly" in str(e) else 1)
        except BaseException:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    next(loader)  # the parent's loader is unaffected
