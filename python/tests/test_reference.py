"""benches/torch_reference.py, the PyTorch twin of gdt's trainer that scripts/gpu-check.sh
times gdt against: it must be the trainer's model exactly, and it must run."""

import json
import subprocess
import sys

from conftest import ROOT

SCRIPT = str(ROOT / "benches" / "torch_reference.py")


def test_the_reference_is_the_trainers_model_and_runs_a_step():
    out = subprocess.run([sys.executable, SCRIPT, "--params", "--device", "cpu"],
                         check=True, capture_output=True, text=True)
    # trainer/src/model: R(2+1)D-18 + ResNet-9 + both heads (`gdt train` prints the same).
    assert json.loads(out.stdout)["parameters"] == 36_988_637
    out = subprocess.run([sys.executable, SCRIPT, "--device", "cpu", "--records", "1", "--clip", "4",
                          "--crop", "16", "--mels", "40", "--audio-frames", "14", "--steps", "1",
                          "--warmup", "1"],
                         check=True, capture_output=True, text=True, timeout=300)
    r = json.loads(out.stdout)
    assert r["mode"] == "eager" and r["clips_per_step"] == 4 and r["clips_per_s"] > 0, r
