"""gdt.Loader over a dataset in an object store (a real S3-compatible server on 127.0.0.1,
Garage, started by scripts/s3-test-server.sh): the same batches as from the local copy, a
local cache, and clear errors."""

import os
import subprocess

import pytest

import gdt
from conftest import ROOT

SMALL = dict(batch_size=4, threads=2, clip=8, crop=32)
SCRIPT = ROOT / "scripts" / "s3-test-server.sh"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """The server's AWS_* variables (and GDT_S3_BUCKET); stopped after the module."""
    where = tmp_path_factory.mktemp("s3")
    out = subprocess.run([SCRIPT, "start", where], check=True, capture_output=True, text=True,
                         env=dict(os.environ, GDT_S3_TEST_SERVER_SECONDS="600"))
    env = dict(line.split("=", 1) for line in out.stdout.split())
    yield env
    subprocess.run([SCRIPT, "stop", where], check=True)


@pytest.fixture(scope="module")
def copied(s3, dataset, gdt_bin):
    """The session's dataset copied into the store by `gdt copy`: its URL."""
    url = f"s3://{s3['GDT_S3_BUCKET']}/py"
    subprocess.run([gdt_bin, "copy", dataset, url], check=True, capture_output=True,
                   env=dict(os.environ, **s3))
    return url


@pytest.fixture
def remote(s3, copied, monkeypatch):
    """The copy's URL, with this process's AWS_* variables pointed at the server."""
    for k, v in s3.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("GDT_STORAGE_RETRY_SECONDS", "3")
    return copied


def digest(loader, n) -> str:
    d = gdt.Digest()
    for _ in range(n):
        b = next(loader)
        d.update(b.video.numpy().tobytes())
        d.update(b.audio.numpy().tobytes())
    return d.hexdigest()


def test_the_store_gives_the_local_batches(remote, dataset, tmp_path):
    local = digest(gdt.Loader(dataset, seed=3, epochs=3, **SMALL), 6)
    assert digest(gdt.Loader(remote, seed=3, epochs=3, **SMALL), 6) == local
    cache = tmp_path / "cache"
    cached = gdt.Loader(remote, seed=3, epochs=3, cache_dir=cache, cache_gib=1, **SMALL)
    assert cached.settings["cache_dir"] == os.fspath(cache)
    assert digest(cached, 6) == local


def test_a_missing_prefix_and_bad_credentials_are_clear_errors(remote, monkeypatch):
    with pytest.raises(gdt.FormatError, match="nothing is stored under this prefix"):
        gdt.Loader(remote + "-missing", **SMALL)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "0" * 64)
    with pytest.raises(gdt.FormatError, match="access denied"):
        gdt.Loader(remote, **SMALL)
