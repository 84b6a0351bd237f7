"""gdt.Loader: shapes, the same bytes as the Rust loader, zero copy, buffer reuse, resume,
rank slices, errors, the GIL, Ctrl-C and forks."""

import inspect
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


def test_keyword_defaults_are_the_native_loader_settings(dataset):
    """gdt.Loader's defaults are the pipeline's LoaderSettings (read from the native module),
    which `gdt train`'s [data] and `gdt bench load` also take: one place to change them."""
    from gdt import _gdt

    native = json.loads(_gdt.loader_defaults())
    assert gdt.LOADER_DEFAULTS == native
    params = inspect.signature(gdt.Loader).parameters
    for key in ("batch_size", "threads", "clip", "crop"):
        assert params[key].default == native[key], key
    loader = gdt.Loader(dataset, **SMALL)
    untouched = set(native) - set(SMALL) - {"shifts", "reversal"}
    assert {k: loader.settings[k] for k in untouched} == {k: native[k] for k in untouched}
    assert (loader.settings["shifts"], loader.settings["reversal"]) == (2, True)
    loader.close()
    with pytest.raises(TypeError, match="unknown settings"):
        gdt.Loader(dataset, batchsize=3)


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
    # Workers run at most `window` batches ahead of the one in hand, so however the threads
    # happen to be scheduled, no more than window + 1 batches (a video and an audio buffer
    # each) ever exist: a loader that dropped its buffers instead of pooling them would
    # allocate two per batch, 200 here. The pauses let the workers run all the way ahead,
    # the most buffers the pool can need (how many it reaches without them is up to timing).
    window = max(gdt.LOADER_DEFAULTS["prefetch"], SMALL["threads"])
    for i in range(100):
        if i % 25 == 0:
            time.sleep(0.3)
        b = next(loader)
        seen.add(b.video.data_ptr())
        del b
    assert loader.buffer_allocations() <= 2 * (window + 1)
    assert len(seen) <= window + 1, len(seen)


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


def test_cuda_without_a_gpu_is_a_clear_error_and_other_devices_are_refused(dataset):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the error is for machines without one")
    with pytest.raises(ValueError, match="no CUDA device"):
        gdt.Loader(dataset, device="cuda", **SMALL)
    with pytest.raises(ValueError, match="only 'cpu' and 'cuda'"):
        gdt.Loader(dataset, device="meta", **SMALL)


class FakeStreams:
    """_CudaStreams' methods on the CPU, so the device path's bookkeeping runs here: copies
    are clones, and an event completes when the test says so (or is synchronized)."""

    def __init__(self):
        self.log = []

    def new_stream(self):
        return "side stream"

    def on(self, stream):
        import contextlib

        self.log.append(("on", stream))
        return contextlib.nullcontext()

    def copy(self, tensor):
        return tensor.clone()

    def record(self, stream):
        return {"done": False, "stream": stream}

    def wait(self, event, tensors):
        self.log.append(("wait", id(event), len(tensors)))

    def done(self, event):
        return event["done"]

    def synchronize(self, event):
        event["done"] = True
        self.log.append(("synchronize", id(event)))


def test_batches_go_to_the_device_ahead_and_host_buffers_wait_for_their_copy(dataset):
    from gdt import _ToDevice

    native = gdt._NativeLoader(os.fspath(dataset), json.dumps(dict(gdt.LOADER_DEFAULTS, **SMALL)),
                               seed=0, epochs=2, rank=0, world=1)
    streams = FakeStreams()
    to_device = _ToDevice(streams, depth=2)
    firsts = [native.next_batch() for _ in range(2)]
    want = [(n.epoch, n.index, n.video().copy()) for n in firsts]
    for n in firsts:
        to_device.push(n)
    assert to_device.full() and len(to_device.copying) == 2
    assert all(entry == ("on", "side stream") for entry in streams.log[:2]), streams.log
    # Handed out: the current stream waits for its copy; the host buffers are still held,
    # since neither copy has finished.
    batch = to_device.pop()
    assert streams.log[-1][0] == "wait" and streams.log[-1][2] == 2
    assert len(to_device.copying) == 2 and batch.native is None
    assert (batch.epoch, batch.index) == want[0][:2]
    assert torch.equal(batch.video, torch.from_numpy(want[0][2]))
    # The masks need no host buffer.
    spec = gdt.preset(gdt.DEFAULT_PRESET)
    c, w = gdt.masks(batch, spec)
    assert c.shape == (32, 32) and w.sum() > 0
    # A copy that finished gives its buffers back at the next hand-out; closing waits for the rest.
    to_device.copying[0][0]["done"] = True
    to_device.pop()
    assert len(to_device.copying) == 1
    to_device.close()
    assert streams.log[-1][0] == "synchronize" and not to_device.copying
    native.close()


def test_a_python_allocator_gives_every_buffer_up_front_and_takes_them_back(dataset):
    import numpy as np

    class Blocks:
        def __init__(self):
            self.live, self.freed = {}, 0

        def allocate(self, nbytes):
            block = np.zeros(nbytes + 64, np.uint8)
            address = block.ctypes.data + (-block.ctypes.data) % 64
            self.live[address] = block
            return address

        def free(self, address):
            self.live.pop(address)
            self.freed += 1

    blocks = Blocks()
    native = gdt._NativeLoader(os.fspath(dataset), json.dumps(dict(gdt.LOADER_DEFAULTS, **SMALL)),
                               seed=0, epochs=2, rank=0, world=1, host_memory=blocks)
    allocated = len(blocks.live)
    assert allocated >= 4 and allocated % 2 == 0, "video and audio buffers, all at the start"
    batch = native.next_batch()
    inside = lambda address: any(a <= address < a + len(b) for a, b in blocks.live.items())
    assert inside(batch.video_address()) and inside(batch.audio_address())
    for _ in range(5):
        native.next_batch()
    assert len(blocks.live) == allocated, "steady state allocates nothing"
    del batch
    native.close()
    assert blocks.freed == allocated and not blocks.live
