"""Model registry: maps a lower-case name (``resnet34``, ``revnet50_ii`` ...) to a builder.

A builder is a callable taking keyword arguments only (``feat_dim``, ``embed_dim``, ``base_width``,
``num_blocks`` and, for reversible models, ``store_activations``) and returning an ``nn.Module`` whose
``name`` attribute is the registry name. Overrides are checked against the builder's signature so a
typo fails loudly with a ``TypeError`` naming the offending key.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import torch.nn as nn

from sv_toolkit.errors import ConfigError

ModelBuilder = Callable[..., nn.Module]

_REGISTRY: dict[str, ModelBuilder] = {}


def register_model(name: str, builder: ModelBuilder) -> None:
    """Register ``builder`` under ``name``; a name can only be registered once."""
    if name != name.lower():
        raise ValueError(f"model names are lower case, got {name!r}")
    if name in _REGISTRY:
        raise ValueError(f"model name {name!r} is already registered")
    _REGISTRY[name] = builder


def available_models() -> list[str]:
    """Sorted list of every registered model name."""
    return sorted(_REGISTRY)


def _accepted_overrides(builder: ModelBuilder) -> list[str]:
    params = inspect.signature(builder).parameters.values()
    return [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


def build_model(name: str, **overrides: object) -> nn.Module:
    """Build the model registered as ``name`` (input (B, T, feat_dim) -> output (B, embed_dim)).

    Raises ``ValueError`` for an unknown name (listing the available ones) and ``TypeError`` for an
    override the model does not accept (naming it and listing the accepted ones).
    """
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; available models: {', '.join(available_models())}")
    builder = _REGISTRY[name]
    accepted = _accepted_overrides(builder)
    unknown = sorted(set(overrides) - set(accepted))
    if unknown:
        raise TypeError(
            f"model {name!r} got unknown override(s) {', '.join(map(repr, unknown))}; "
            f"accepted overrides: {', '.join(accepted)}"
        )
    model = builder(**overrides)
    model.name = name
    return model


def check_num_blocks(num_blocks: Sequence[int], stages: int = 4) -> tuple[int, ...]:
    """Validate a ``num_blocks`` override: ``stages`` positive ints."""
    blocks = tuple(num_blocks)
    if len(blocks) != stages or not all(isinstance(b, int) and b >= 1 for b in blocks):
        raise ValueError(f"num_blocks must be {stages} positive ints, got {num_blocks!r}")
    return blocks
