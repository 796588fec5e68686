"""Checkpoints of 8-bit optimizer states: versioned state_dict, validated loading, torch.optim export.

Per parameter, an 8-bit state holds ``<name>_codes`` (uint8, numel), ``<name>_absmax`` (fp32, one per
block) and ``block_size``; an fp32 state holds ``<name>`` shaped like the parameter, as torch.optim does.
``state_dict()`` adds a top-level ``"sv_toolkit_8bit"`` entry with the format version. Loading keeps
absmax and fp32 states in fp32 whatever the parameter dtype (torch.optim would cast them to it), moves
everything to the parameter's device, checks every shape, and re-quantises states saved with another
block size or in the other layout (block size, min_8bit_size and fp32_states stay this optimizer's;
every other hyper-parameter comes from the checkpoint, as in torch.optim). A plain torch.optim state_dict of the matching optimizer loads too.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch

from sv_toolkit.optim.blockwise import dequantize_blockwise, num_blocks, quantize_blockwise
from sv_toolkit.optim.chunking import flat_view

FORMAT_KEY = "sv_toolkit_8bit"
FORMAT_VERSION = 1
_OWN_GROUP_KEYS = ("block_size", "min_8bit_size", "fp32_states")


class CheckpointMixin:
    """state_dict / load_state_dict / torch_state_dict for :class:`Optimizer8bit`."""

    STATE_SPECS: tuple[tuple[str, bool], ...]
    TORCH_OPTIMIZER: type[torch.optim.Optimizer]

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """torch.optim's state_dict plus ``{"sv_toolkit_8bit": {"format_version", "optimizer", ...}}``."""
        sd = super().state_dict()  # type: ignore[misc]
        sd[FORMAT_KEY] = {"format_version": FORMAT_VERSION, "optimizer": type(self).__name__,
                          "states": [name for name, _ in self.STATE_SPECS]}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        """Load a state_dict from :meth:`state_dict` (any device) or from the matching torch.optim class."""
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError("optimizer state_dict must be a dict with 'state' and 'param_groups'")
        info = state_dict.get(FORMAT_KEY)
        if info is not None:
            version = info.get("format_version")
            if version != FORMAT_VERSION:
                raise ValueError(f"8-bit optimizer checkpoint has format_version={version!r}; this "
                                 f"sv_toolkit reads version {FORMAT_VERSION}")
            if info.get("optimizer") != type(self).__name__:
                raise ValueError(f"checkpoint was written by {info.get('optimizer')!r}, cannot load it into "
                                 f"{type(self).__name__}")
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        for group, own in zip(saved_groups, self.param_groups):  # type: ignore[attr-defined]
            for key in _OWN_GROUP_KEYS:  # the storage layout is this optimizer's choice, not the checkpoint's
                group[key] = own[key]
        saved_state = state_dict["state"]
        super().load_state_dict({"state": {}, "param_groups": saved_groups})  # type: ignore[misc]
        ids = [pid for g in saved_groups for pid in g["params"]]
        params = [p for g in self.param_groups for p in g["params"]]  # type: ignore[attr-defined]
        groups = [g for g in self.param_groups for _ in g["params"]]  # type: ignore[attr-defined]
        for pid, p, group in zip(ids, params, groups):
            if pid in saved_state:
                self.state[p] = self._restore_param_state(p, group, saved_state[pid])  # type: ignore[attr-defined]

    def _restore_param_state(self, p: torch.Tensor, group: dict[str, Any], saved: dict[str, Any]) -> dict[str, Any]:
        state: dict[str, Any] = {}
        step = saved.get("step", torch.tensor(1.0))  # torch.optim.SGD keeps no step: the buffer is in use
        state["step"] = torch.as_tensor(step, dtype=torch.float32).detach().clone().cpu()
        first = self.STATE_SPECS[0][0]
        if f"{first}_codes" in saved:
            bs = saved.get("block_size")
            if not isinstance(bs, int) or bs < 2:
                raise ValueError(f"8-bit state for parameter of shape {tuple(p.shape)} has block_size={bs!r}")
            for name, signed in self.STATE_SPECS:
                codes = saved[f"{name}_codes"]
                absmax = saved[f"{name}_absmax"]
                if codes.dtype != torch.uint8 or codes.numel() != p.numel():
                    raise ValueError(f"'{name}_codes' for parameter of shape {tuple(p.shape)} must be uint8 "
                                     f"with {p.numel()} elements, got {codes.dtype} with {codes.numel()}")
                if absmax.numel() != num_blocks(p.numel(), bs):
                    raise ValueError(f"'{name}_absmax' for parameter of shape {tuple(p.shape)} in blocks of "
                                     f"{bs} needs {num_blocks(p.numel(), bs)} values, got {absmax.numel()}")
                state[f"{name}_codes"] = codes.detach().to(p.device).reshape(-1).clone()
                state[f"{name}_absmax"] = absmax.detach().to(device=p.device, dtype=torch.float32).reshape(-1).clone()
            state["block_size"] = bs
        else:
            for name, _ in self.STATE_SPECS:
                if name not in saved:
                    raise ValueError(f"state of parameter of shape {tuple(p.shape)} has neither '{name}' nor "
                                     f"'{name}_codes' (keys: {sorted(saved)})")
                value = saved[name]
                if tuple(value.shape) != tuple(p.shape):
                    raise ValueError(f"'{name}' has shape {tuple(value.shape)}, parameter has {tuple(p.shape)}")
                dense = torch.empty_like(p, dtype=torch.float32)
                dense.copy_(value.detach())
                state[name] = dense
        wants_8bit = self._wants_8bit(group, p)  # type: ignore[attr-defined]
        if wants_8bit != self._is_8bit_state(state):  # type: ignore[attr-defined]
            self._convert_state_(p, state, to_8bit=wants_8bit, block_size=group["block_size"])
        elif wants_8bit and state["block_size"] != group["block_size"]:
            warnings.warn(f"re-quantising states of parameter of shape {tuple(p.shape)} from block size "
                          f"{state['block_size']} to {group['block_size']}", RuntimeWarning, stacklevel=3)
            self._convert_state_(p, state, to_8bit=False)
            self._convert_state_(p, state, to_8bit=True, block_size=group["block_size"])
        return state

    def _convert_state_(self, p: torch.Tensor, state: dict[str, Any], to_8bit: bool,
                        block_size: int | None = None) -> None:
        """Switch one parameter's states between the 8-bit and the fp32 layout, in place."""
        for name, signed in self.STATE_SPECS:
            if to_8bit:
                bs = int(block_size)  # type: ignore[arg-type]
                codes, absmax = quantize_blockwise(flat_view(state.pop(name)), bs, signed)
                state[f"{name}_codes"], state[f"{name}_absmax"] = codes, absmax
                state["block_size"] = bs
            else:
                state[name] = self._dense_state(p, state, name, signed)
                del state[f"{name}_codes"], state[f"{name}_absmax"]
        if not to_8bit:
            state.pop("block_size", None)

    @staticmethod
    def _dense_state(p: torch.Tensor, state: dict[str, Any], name: str, signed: bool) -> torch.Tensor:
        """fp32 state shaped (and strided) like ``p``; dequantised when stored in 8 bits."""
        if name in state:
            return state[name]
        dense = torch.empty_like(p, dtype=torch.float32)
        flat_view(dense).copy_(dequantize_blockwise(state[f"{name}_codes"], state[f"{name}_absmax"],
                                                    state["block_size"], signed))
        return dense

    def torch_state_dict(self) -> dict[str, Any]:
        """Dequantised fp32 states in the layout of ``TORCH_OPTIMIZER`` (load it with its load_state_dict)."""
        sd = super().state_dict()  # type: ignore[misc]
        out_state: dict[int, dict[str, Any]] = {}
        params = [p for g in self.param_groups for p in g["params"]]  # type: ignore[attr-defined]
        for pid, p in enumerate(params):
            state = self.state.get(p)  # type: ignore[attr-defined]
            if not state:
                continue
            entry = {name: self._dense_state(p, state, name, signed).clone() for name, signed in self.STATE_SPECS}
            out_state[pid] = self._torch_state_entry(state, entry)
        groups = [{k: v for k, v in g.items() if k not in _OWN_GROUP_KEYS} for g in sd["param_groups"]]
        return {"state": out_state, "param_groups": groups}

    def _torch_state_entry(self, state: dict[str, Any], dense: dict[str, torch.Tensor]) -> dict[str, Any]:
        """torch.optim's per-parameter state from our dense states (subclasses rename or add keys)."""
        return {"step": state["step"].clone(), **dense}
