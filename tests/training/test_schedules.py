"""LR and margin schedules against wespeaker's per-iteration formulas (wespeaker/utils/schedulers.py)."""
from __future__ import annotations

import math

import pytest
import torch

from sv_toolkit.losses import AAMSoftmax, MarginScheduler
from sv_toolkit.optim import warmup_cosine, warmup_exponential


def wespeaker_margin(it: int, epoch_iter: int, start_epoch: int, fix_epoch: int, initial: float, final: float) -> float:
    """wespeaker MarginScheduler (increase_type exp) at iteration ``it`` (0-based), epochs 1-based."""
    start_it, fix_it = (start_epoch - 1) * epoch_iter, (fix_epoch - 1) * epoch_iter
    if it >= fix_it:
        return final
    if it < start_it:
        return initial
    ratio = 1.0 - math.exp((it - start_it) / (fix_it - start_it) * math.log(1e-3 / (1.0 + 1e-6)))
    return initial + (final - initial) * ratio


def wespeaker_exponential_lr(it: int, epoch_iter: int, epochs: int, lr0: float, final: float, warm_epochs: int,
                             scale: float) -> float:
    """wespeaker ExponentialDecrease with warm_from_zero=True and scale_ratio ``scale``."""
    max_it, warm_it = epochs * epoch_iter, warm_epochs * epoch_iter
    coeff = scale * it / warm_it if it < warm_it else scale
    return coeff * lr0 * math.exp(it / max_it * math.log(final / lr0))


def test_margin_matches_wespeaker_voxceleb_schedule():
    epoch_iter = 7
    head = AAMSoftmax(4, 3)
    sched = MarginScheduler(head, 0.0, 0.2, start_epoch=20, end_epoch=40)
    for it in range(0, 45 * epoch_iter):
        epochs_done = it // epoch_iter + (it % epoch_iter) / epoch_iter  # as the Trainer computes it
        m = sched.step(epochs_done)
        assert m == pytest.approx(wespeaker_margin(it, epoch_iter, 20, 40, 0.0, 0.2), abs=1e-12)
        assert head.margin == m
    assert sched.margin_at(18.99) == 0.0 and sched.margin_at(19.0) == 0.0
    assert 0.19 < sched.margin_at(38.99) < 0.2 and sched.margin_at(39.0) == 0.2


def test_fixed_margin_for_large_margin_fine_tuning():
    sched = MarginScheduler(AAMSoftmax(4, 3), 0.5, 0.5, start_epoch=1, end_epoch=1)
    assert sched.margin_at(0.0) == sched.margin_at(3.7) == 0.5


def test_margin_state_round_trip():
    head = AAMSoftmax(4, 3)
    a = MarginScheduler(head, 0.0, 0.2, 2, 4)
    a.step(2.5)
    b = MarginScheduler(AAMSoftmax(4, 3), 0.0, 0.2, 2, 4)
    b.load_state_dict(a.state_dict())
    assert b.margin == a.margin == b.head.margin > 0
    with pytest.raises(ValueError, match="1-based"):
        MarginScheduler(head, 0.0, 0.2, 0, 4)


@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_exponential_lr_matches_wespeaker_with_lr_scaling(scale):
    """Our scaling multiplies optim.lr and final_lr by the scale; wespeaker multiplies the whole curve."""
    epoch_iter, epochs, warm = 5, 12, 2
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1 * scale)
    sched = warmup_exponential(opt, 5e-5 * scale, total_steps=epochs * epoch_iter, warmup_steps=warm * epoch_iter)
    for it in range(epochs * epoch_iter):
        lr = opt.param_groups[0]["lr"]
        assert lr == pytest.approx(wespeaker_exponential_lr(it, epoch_iter, epochs, 0.1, 5e-5, warm, scale), rel=1e-9)
        opt.step()
        sched.step()


def test_cosine_lr_warms_up_then_reaches_the_floor():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = warmup_cosine(opt, 0.01, total_steps=20, warmup_steps=4)
    lrs = []
    for _ in range(21):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:5] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert lrs[12] == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lrs[20] == pytest.approx(0.01) and all(a >= b for a, b in zip(lrs[4:], lrs[5:]))
