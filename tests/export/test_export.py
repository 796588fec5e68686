"""TorchScript / ONNX exports give the eager model's embeddings (reversible models: their plain forward)."""
import numpy as np
import pytest
import torch

from sv_toolkit.export import export_model, plain_forward_copy, run_exported
from sv_toolkit.models import build_model

MODELS = ["resnet10", "revnet10_i", "revnet10_ii", "dfrevnet56_ii"]


@pytest.fixture(scope="module", params=MODELS)
def model(request):
    torch.manual_seed(0)
    m = build_model(request.param, base_width=4, embed_dim=64)
    # Non-trivial BatchNorm statistics, as after training.
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
    return m.eval()


@pytest.mark.parametrize("fmt,suffix", [("torchscript", ".ts"), ("onnx", ".onnx")])
def test_exported_embeddings_match_eager(model, tmp_path, fmt, suffix):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime", reason="ONNX checks need the [export] extra")
    path = export_model(model, tmp_path / f"m{suffix}", fmt)
    for batch, frames in [(1, 200), (3, 157), (2, 411)]:  # frames other than the traced 200, odd ones included
        feats = torch.randn(batch, frames, 80, generator=torch.Generator().manual_seed(frames))
        with torch.no_grad():
            eager = model(feats).numpy()
        # Measured: ONNX at most 4.2e-7 (embeddings up to 0.6), TorchScript exactly 0; the bound is 1e-4.
        np.testing.assert_allclose(run_exported(path, feats), eager, atol=1e-4, rtol=0)


def test_export_leaves_the_model_untouched(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plain = plain_forward_copy(model)
    assert plain is not model and not any(p.requires_grad for p in plain.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="not one of"):
        export_model(model, "x.bin", "tflite")
