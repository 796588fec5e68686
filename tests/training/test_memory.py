"""Memory accounting: saved-for-backward bytes, peak live bytes, the per-sample slope."""

from __future__ import annotations

import torch
import torch.nn as nn

from sv_toolkit.models.reversible import CouplingBlock, ReversibleSequence
from sv_toolkit.training.memory import measure_activation_slope, measure_training_step

torch.set_num_threads(1)


def _square_sum(out: torch.Tensor) -> torch.Tensor:
    return out.square().sum()


def test_slope_of_a_known_net() -> None:
    """Linear(1000 -> 1000) + ReLU keeps, per sample, its fp32 input and the ReLU output: 8000 bytes
    exactly. The peak (at the end of backward, when the weight gradient is allocated) holds the
    output gradient, 4000 B per sample (the input was made before the step, outside the tracker)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1000, 1000), nn.ReLU())
    slope = measure_activation_slope(model, lambda b: _square_sum, lambda b: torch.randn(b, 1000), None, (4, 12))
    assert slope.saved_per_sample == 8000
    assert slope.peak_per_sample == 4000, slope.peak_per_sample
    report = slope.report
    assert report.weights == report.grads == 1001 * 1000 * 4
    assert slope.total_bytes(128) == 2 * 1001 * 1000 * 4 + 128 * slope.peak_per_sample


def test_views_of_weights_are_not_counted_again() -> None:
    """``x @ W.t()`` dispatches ``t`` on the weight: its storage was counted in the baseline already."""
    torch.manual_seed(0)
    model = nn.Linear(2000, 2000)
    report = measure_training_step(model, _square_sum, torch.randn(1, 2000), None)
    assert report.peak_live < report.weights + report.grads + 100_000, report


def test_reversible_run_keeps_only_its_output_in_hi_and_lo() -> None:
    torch.manual_seed(0)

    def branch() -> nn.Module:
        return nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())

    run = ReversibleSequence([CouplingBlock(branch(), branch()) for _ in range(6)], stream_dtype=torch.float64)
    x = torch.randn(2, 8, 16, 16)
    report = measure_training_step(run, _square_sum, x, None)
    assert report.activations_saved == 2 * x.numel() * 4  # fp32 output + fp32 residual, via ctx
    run.store_activations = True
    stored = measure_training_step(run, _square_sum, x, None)
    assert stored.activations_saved > 5 * report.activations_saved  # measured 9.5x
