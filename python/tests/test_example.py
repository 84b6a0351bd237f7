"""examples/train_torch.py runs as users run it: under torchrun, 2 Gloo ranks on CPU, with
the branches CUDA takes (channels-last layouts, bf16 autocast) turned on, so what crashed
on a GPU once would crash here too."""

import os
import signal
import socket
import subprocess
import sys

from conftest import ROOT


def test_the_ddp_example_trains_a_few_steps_on_two_gloo_ranks(dataset, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(port),
           str(ROOT / "examples" / "train_torch.py"), str(dataset), "--steps", "2",
           "--batch-size", "2", "--threads", "1", "--clip", "4", "--crop", "16", "--log-every", "1",
           # bf16 on a CPU without bf16 instructions is ~40x slower than f32: tiny clips.
           "--cuda-branches-on-cpu"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:  # never leave torchrun or its ranks behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, out
    assert "step 2: loss" in out and "clips/s (global)" in out, out
