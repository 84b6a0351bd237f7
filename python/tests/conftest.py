"""Fixtures: a small packed dataset written by the `gdt` binary (`gdt synth --packed`, no
FFmpeg), once per test session."""

import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def gdt_binary() -> pathlib.Path:
    """The `gdt` command line of this checkout (GDT_BIN overrides)."""
    path = pathlib.Path(os.environ.get("GDT_BIN", ROOT / "target" / "release" / "gdt"))
    if not path.exists():
        pytest.fail(f"{path} is missing: build it first (cargo build --release, or make test)")
    return path


@pytest.fixture(scope="session")
def gdt_bin() -> pathlib.Path:
    return gdt_binary()


@pytest.fixture(scope="session")
def dataset(tmp_path_factory, gdt_bin) -> pathlib.Path:
    """16 records of 3-4 s at 96x64, 40 mels."""
    out = tmp_path_factory.mktemp("gdt") / "ds"
    subprocess.run(
        [gdt_bin, "synth", "--packed", "-o", out, "--count", "16", "--min-seconds", "3",
         "--max-seconds", "4", "--resolutions", "96x64", "--mels", "40", "--seed", "3"],
        check=True,
        capture_output=True,
    )
    return out
