"""train_step: gradient accumulation equals one large batch (BatchNorm-free model), precision handling."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from sv_toolkit.losses import AAMSoftmax
from sv_toolkit.models import build_model
from sv_toolkit.training.distributed import DistEnv
from sv_toolkit.training.step import NonFiniteError, SpeakerNet, autocast_dtype, make_grad_scaler, train_step

CPU = torch.device("cpu")


class ConvStatsNet(nn.Module):
    """No BatchNorm: conv1d over time, ReLU, mean + std pooling, linear (every sample is independent)."""

    def __init__(self, feat_dim: int = 20, channels: int = 16, embed_dim: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv1d(feat_dim, channels, 5, padding=2)
        self.out = nn.Linear(2 * channels, embed_dim)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(feats.transpose(1, 2)))  # (B, C, T)
        return self.out(torch.cat([h.mean(-1), h.std(-1)], dim=1))  # (B, D)


def _steps(net: SpeakerNet, feats: torch.Tensor, labels: torch.Tensor, accum: int, steps: int = 3) -> SpeakerNet:
    opt = torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.9, nesterov=True, weight_decay=1e-4)
    for s in range(steps):
        x, y = feats[s], labels[s]
        micro = list(zip(x.chunk(accum), y.chunk(accum)))
        opt.zero_grad(set_to_none=True)
        train_step(net, opt, micro, CPU, DistEnv())
    return net


def test_accumulation_4x8_equals_batch_32_without_batchnorm():
    torch.manual_seed(0)
    net = SpeakerNet(ConvStatsNet(), AAMSoftmax(8, 10, margin=0.2))
    feats, labels = torch.randn(3, 32, 50, 20), torch.randint(10, (3, 32))
    one = _steps(copy.deepcopy(net), feats, labels, accum=1)
    four = _steps(copy.deepcopy(net), feats, labels, accum=4)
    worst = max(((p - q).abs().max() / p.abs().max()).item() for p, q in zip(one.parameters(), four.parameters()))
    # Measured on the 2-core CPU: 1.0e-6 after 1, 2 and 3 steps: fp32 rounding (the same sums in another order).
    # In float64 the model's gradients agree to 1e-15 and the head's (which computes in fp32) to 9e-8.
    # 1e-5 is 10x the measurement; a real accumulation error (e.g. a wrong micro-batch weight) is O(1).
    assert worst < 1e-5
    assert any((p != q).any() for p, q in zip(net.parameters(), one.parameters()))  # training did move the weights


def test_accumulation_with_batchnorm_is_per_micro_batch_statistics():
    """With BatchNorm, 4 x 8 is not batch 32 (statistics of 8 samples), but it is exactly the mean of the
    gradients of the four batches of 8 computed separately: that is the documented behaviour."""
    torch.manual_seed(0)
    net = SpeakerNet(build_model("resnet10", base_width=4, embed_dim=8, feat_dim=20), AAMSoftmax(8, 10))
    feats, labels = torch.randn(32, 40, 20), torch.randint(10, (32,))
    grads = []
    for micro_batches in ([(feats, labels)], list(zip(feats.chunk(4), labels.chunk(4)))):
        copy_ = copy.deepcopy(net)
        opt = torch.optim.SGD(copy_.parameters(), lr=0.0)
        train_step(copy_, opt, micro_batches, CPU, DistEnv())
        grads.append(torch.cat([p.grad.flatten() for p in copy_.parameters()]))
    separate = []
    for x, y in zip(feats.chunk(4), labels.chunk(4)):
        copy_ = copy.deepcopy(net)
        loss, _ = copy_(x, y)
        loss.backward()
        separate.append(torch.cat([p.grad.flatten() for p in copy_.parameters()]))
    torch.testing.assert_close(grads[1], torch.stack(separate).mean(0), rtol=1e-5, atol=1e-6)
    rel = ((grads[0] - grads[1]).norm() / grads[0].norm()).item()
    assert rel > 0.05  # statistics of 8 vs 32 samples change the gradient (measured 0.27-0.38 over seeds 0-3)


def test_bf16_autocast_runs_a_reversible_model_on_cpu():
    torch.manual_seed(0)
    model = build_model("revnet10_ii", base_width=4, embed_dim=8, feat_dim=20)
    head = AAMSoftmax(8, 5)
    feats, labels = torch.randn(4, 32, 20), torch.randint(5, (4,))
    losses, grads = {}, {}
    for precision in ("fp32", "bf16"):
        net = SpeakerNet(copy.deepcopy(model), copy.deepcopy(head), autocast_dtype(precision, CPU))
        opt = torch.optim.SGD(net.parameters(), lr=0.0)
        losses[precision] = train_step(net, opt, [(feats, labels)], CPU, DistEnv()).loss
        assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in net.parameters())
        grads[precision] = torch.cat([p.grad.flatten() for p in net.parameters()])
    # Measured over seeds 0-7 of this set-up: bf16 loss within 1.4% of fp32, gradient cosine 0.945-0.983
    # (bf16 keeps 8 mantissa bits; the streams stay fp32). A broken autocast path gives O(1) differences.
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.03)
    assert torch.nn.functional.cosine_similarity(grads["fp32"], grads["bf16"], dim=0) > 0.85


def test_fp16_needs_cuda_and_unknown_precision_is_named():
    with pytest.raises(ValueError, match="trainer.precision=fp16 needs a CUDA device"):
        make_grad_scaler("fp16", CPU)
    with pytest.raises(ValueError, match="'fp8'"):
        autocast_dtype("fp8", CPU)
    assert make_grad_scaler("bf16", CPU) is None


def test_non_finite_loss_raises_before_the_update():
    torch.manual_seed(0)
    net = SpeakerNet(ConvStatsNet(), AAMSoftmax(8, 4))
    before = copy.deepcopy(net.state_dict())
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    feats = torch.randn(4, 30, 20)
    feats[1, 3, 2] = float("nan")
    with pytest.raises(NonFiniteError, match="the loss is nan"):
        train_step(net, opt, [(feats, torch.tensor([0, 1, 2, 3]))], CPU, DistEnv())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fp16_with_grad_scaler_on_cuda():
    dev = torch.device("cuda")
    torch.manual_seed(0)
    net = SpeakerNet(build_model("resnet10", base_width=4, embed_dim=8, feat_dim=20), AAMSoftmax(8, 5),
                     autocast_dtype("fp16", dev)).to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    scaler = make_grad_scaler("fp16", dev)
    feats, labels = torch.randn(8, 32, 20, device=dev), torch.randint(5, (8,), device=dev)
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        result = train_step(net, opt, [(feats, labels)], dev, DistEnv(), scaler)
    assert result.loss == result.loss and scaler.get_scale() > 0
