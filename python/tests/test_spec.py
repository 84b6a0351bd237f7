"""gdt.TransformSpec and gdt.nce_loss: the trainer's spec, masks and loss for PyTorch."""

import pytest
import torch

import gdt


def batch_for(dataset, name):
    _, shifts, reversal = gdt.TransformSpec.preset(name)
    loader = gdt.Loader(dataset, batch_size=3, threads=1, clip=8, crop=32, shifts=shifts, reversal=reversal)
    return next(loader), loader.shape["views"]


@pytest.mark.parametrize("name", gdt.TransformSpec.preset_names())
def test_nce_loss_equals_the_rust_reference_formula(dataset, name):
    """The PyTorch loss against the Rust crate's f64 formula, the same oracle the trainer's
    libtorch loss is tested against (trainer/src/gdt_loss.rs), on a real batch's masks."""
    spec = gdt.preset(name)
    batch, views = batch_for(dataset, name)
    n = batch.records * views
    torch.manual_seed(0)
    for temperature in (0.07, 0.5):
        v = torch.nn.functional.normalize(torch.randn(n, 32, dtype=torch.float64), dim=1)
        a = torch.nn.functional.normalize(torch.randn(n, 32, dtype=torch.float64), dim=1)
        got = gdt.nce_loss(v, a, batch, spec, temperature).item()
        want = spec.reference_loss(batch.native, torch.cat([v, a]).numpy(), temperature)
        assert got == pytest.approx(want, rel=1e-5), (name, temperature)


def test_masks_follow_the_spec(dataset):
    spec = gdt.preset("cross-modal")
    batch, views = batch_for(dataset, "cross-modal")
    c, w = spec.masks(batch.native)
    n = batch.records * views
    assert c.shape == w.shape == (2 * n, 2 * n)
    # Cross-modal: video row 0 pairs only with audio rows; its positives are its record's audio.
    assert w[0, :n].sum() == 0 and w[0, n:].sum() == n
    assert c[0, n:n + views].tolist() == [1.0] * views and c[0, n + views:].sum() == 0


def test_the_loss_trains(dataset):
    spec = gdt.preset("tr-distinct-ts-distinct")
    batch, views = batch_for(dataset, "tr-distinct-ts-distinct")
    n = batch.records * views
    z = torch.randn(2 * n, 16, requires_grad=True)
    loss = gdt.nce_loss(*torch.nn.functional.normalize(z, dim=1).split(n), batch, spec)
    loss.backward()
    assert torch.isfinite(loss) and z.grad.abs().sum() > 0


def test_specs_are_validated_as_in_the_trainer():
    spec = gdt.TransformSpec({"shift": "distinct", "reversal": "distinct"})
    assert spec.factors()["shift"] == "distinct" and spec.pairs == "cross-modal"
    with pytest.raises(gdt.SpecError, match="shift"):
        spec.check_layout(1, True)
    with pytest.raises(gdt.SpecError):
        gdt.TransformSpec(pairs="some")
    with pytest.raises(gdt.SpecError):
        gdt.TransformSpec({"shift": "maybe"})
    assert "tr-distinct-ts-distinct" in gdt.TransformSpec.preset_names()
