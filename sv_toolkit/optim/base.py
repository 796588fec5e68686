"""Shared machinery of the 8-bit optimizers: state layout, chunked 8-bit step, non-finite policy.

A subclass names its states (``STATE_SPECS``: name and whether its code book is signed) and writes its
math twice at most: ``_update_moments_`` (in-place on fp32 states, foreach lists) and ``_apply_update_``
(in-place on parameters). The same two methods serve the fp32 states of small tensors (one list entry per
parameter) and the 8-bit states (one list entry per flat workspace, decoded states still normalised by
their block absmax, which ``decay_`` folds into the first multiplication), so the two paths cannot drift
apart.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from typing import Any, Callable, Iterable

import torch

from sv_toolkit.optim.bnb_backend import bnb_update_, check_bitsandbytes_backend
from sv_toolkit.optim.blockwise import DEFAULT_BLOCK_SIZE, check_block_size, get_codec, num_blocks
from sv_toolkit.optim.chunking import (DEFAULT_CHUNK_SIZE, Chunk, Workspace, flat_view, grad_flat_view,
                                       plan_chunks)
from sv_toolkit.optim.checkpoint import CheckpointMixin
from sv_toolkit.optim.compiled import FusedMath, make_chunk_kernel

MIN_8BIT_SIZE = 4096
NONFINITE_POLICIES = ("skip", "raise")
_COMPILED: dict[tuple[Any, ...], Callable[..., Any]] = {}  # compiled chunk kernels, shared by instances


class Optimizer8bit(CheckpointMixin, torch.optim.Optimizer):
    """Base class: block-wise 8-bit states for tensors >= ``min_8bit_size`` elements, fp32 for the rest.

    Non-finite gradients: before touching anything, ``step()`` checks every gradient. If one holds a NaN or
    an infinity, ``nonfinite_grad="skip"`` (default) leaves all parameters and states (step counts too)
    unchanged, counts the step in ``skipped_steps`` and warns (RuntimeWarning) with the offending
    parameters' positions; ``"raise"`` raises FloatingPointError instead. Under AMP, GradScaler skips such
    steps itself (it does not call ``step()``), so this policy only sees gradients GradScaler let through.
    """

    STATE_SPECS: tuple[tuple[str, bool], ...] = ()
    TORCH_OPTIMIZER: type[torch.optim.Optimizer] = torch.optim.Optimizer

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any], *, block_size: int = DEFAULT_BLOCK_SIZE,
                 min_8bit_size: int = MIN_8BIT_SIZE, nonfinite_grad: str = "skip",
                 chunk_size: int = DEFAULT_CHUNK_SIZE, compile: bool = False, backend: str = "torch") -> None:
        if backend not in ("torch", "bitsandbytes"):
            raise ValueError(f"backend must be 'torch' or 'bitsandbytes', got {backend!r}")
        check_block_size(block_size)
        if backend == "bitsandbytes":
            check_bitsandbytes_backend(block_size)
        if not isinstance(chunk_size, int) or chunk_size < block_size:
            raise ValueError(f"chunk_size must be an integer >= block_size ({block_size}), got {chunk_size!r}")
        if nonfinite_grad not in NONFINITE_POLICIES:
            raise ValueError(f"nonfinite_grad must be one of {NONFINITE_POLICIES}, got {nonfinite_grad!r}")
        for flag in ("capturable", "differentiable"):
            if defaults.pop(flag, False):
                raise ValueError(f"{type(self).__name__} does not support {flag}=True")
        if defaults.pop("fused", None):
            raise ValueError(f"{type(self).__name__} does not support fused=True (its step is already batched)")
        defaults.pop("foreach", None)  # always batched
        defaults.update(block_size=block_size, min_8bit_size=min_8bit_size, fp32_states=False)
        super().__init__(params, defaults)
        self.nonfinite_grad = nonfinite_grad
        self.chunk_size = chunk_size
        self.compile = compile
        self.backend = backend
        self.skipped_steps = 0
        self._fp32_overrides: set[int] = set()
        self._workspaces: dict[tuple[torch.device, int], Workspace] = {}
        self._plans: dict[tuple[int, ...], list[Chunk]] = {}

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """torch's add_param_group, with the group's 8-bit options validated."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        check_block_size(group["block_size"])
        if not isinstance(group["min_8bit_size"], int) or group["min_8bit_size"] < 1:
            raise ValueError(f"min_8bit_size must be a positive integer, got {group['min_8bit_size']!r}")
        if not isinstance(group["fp32_states"], bool):
            raise ValueError(f"fp32_states must be True or False, got {group['fp32_states']!r}")

    # ---- hooks for subclasses -------------------------------------------------------------------------
    def _update_moments_(self, group: dict[str, Any], grads: list[torch.Tensor],
                         states: dict[str, list[torch.Tensor]], scales: dict[str, list[torch.Tensor]] | None,
                         fresh: bool) -> None:
        """Update the states in place from the (transformed) gradients.

        With ``scales`` None the states hold their values; otherwise a state tensor holds a block-wise
        normalised value whose true value is ``state.view(-1, block_size) * scale[:, None]`` (decoded 8-bit
        states): :func:`decay_` applies ``state <- factor * true value`` either way, so one line of math
        serves both layouts. Afterwards every state holds its true value.
        """
        raise NotImplementedError

    def _apply_update_(self, group: dict[str, Any], params: list[torch.Tensor], grads: list[torch.Tensor],
                       states: dict[str, list[torch.Tensor]], step: int, scratch: list[torch.Tensor] | None,
                       split: Callable[[list[torch.Tensor]], list[torch.Tensor]]) -> None:
        """Update the parameters in place from the new states.

        ``grads``, ``states`` and ``scratch`` (fp32 buffers shaped like the states, or None: allocate) are
        whole tensors: one per parameter (fp32 states) or one per workspace (8-bit states), so that
        elementwise work runs once per workspace; ``split`` turns such a list into one view per parameter
        segment, aligned with ``params``, for the final parameter update.
        """
        raise NotImplementedError

    def _modifies_grads(self, group: dict[str, Any]) -> bool:
        """Whether the step writes into the gradients it is given (then fp32 states get a copy)."""
        return bool(group.get("maximize", False)) or (group["weight_decay"] != 0 and not self._decoupled_decay(group))

    def _fused_math(self, group: dict[str, Any]) -> tuple[Any, FusedMath]:
        """(cache key, functional math) for the compiled chunk kernel."""
        raise NotImplementedError

    def _fused_hyper(self, group: dict[str, Any], step: int, fresh: bool) -> list[float]:
        """The math's scalars for this step, passed as one tensor so that no value triggers a recompile."""
        raise NotImplementedError

    def _bnb_kind(self, group: dict[str, Any]) -> str:
        """The bitsandbytes kernel family ("adam", "adamw" or "momentum")."""
        raise NotImplementedError

    def _grad_transform_(self, group: dict[str, Any], grads: list[torch.Tensor],
                         params: list[torch.Tensor]) -> None:
        """maximize, then L2 weight decay added to the gradient (torch.optim's order)."""
        if group.get("maximize", False):
            torch._foreach_neg_(grads)
        if group["weight_decay"] != 0 and not self._decoupled_decay(group):
            torch._foreach_add_(grads, params, alpha=group["weight_decay"])

    def _decoupled_decay(self, group: dict[str, Any]) -> bool:
        return False

    # ---- public API -----------------------------------------------------------------------------------
    def keep_fp32_states(self, *params: torch.Tensor) -> None:
        """Keep these parameters' states in fp32 whatever their size (converts states already created)."""
        for p in params:
            self._fp32_overrides.add(id(p))
            state = self.state.get(p)
            if state and self._is_8bit_state(state):
                self._convert_state_(p, state, to_8bit=False)

    def uses_8bit_state(self, param: torch.Tensor) -> bool:
        """Whether ``param``'s states are (or will be) stored in 8 bits."""
        state = self.state.get(param)
        if state:
            return self._is_8bit_state(state)
        group = next(g for g in self.param_groups if any(q is param for q in g["params"]))
        return self._wants_8bit(group, param)

    def state_nbytes(self) -> int:
        """Bytes held by all optimizer states (codes, absmax and fp32 states; steps excluded)."""
        total = 0
        for state in self.state.values():
            for key, value in state.items():
                if key != "step" and torch.is_tensor(value):
                    total += value.numel() * value.element_size()
        return total

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One optimisation step (see the class docstring); returns the closure's loss if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if not self._grads_are_finite():
            return loss
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                if p.grad.is_sparse:
                    raise ValueError(f"{type(self).__name__} does not support sparse gradients")
                if p not in self.state or not self.state[p]:
                    self._init_state_(group, p)
            if self._decoupled_decay(group) and group["weight_decay"] != 0:
                torch._foreach_mul_(params, 1.0 - group["lr"] * group["weight_decay"])
            by_step: dict[tuple[int, bool, torch.device], list[torch.Tensor]] = defaultdict(list)
            torch._foreach_add_([self.state[p]["step"] for p in params], 1.0)
            for p in params:  # batched together: parameters at the same step, layout and device
                state = self.state[p]
                by_step[(int(state["step"].item()), self._is_8bit_state(state), p.device)].append(p)
            for (step, is_8bit, _), members in by_step.items():
                if is_8bit:
                    self._step_8bit(group, members, step)
                else:
                    self._step_fp32(group, members, step)
        return loss

    # ---- internals --------------------------------------------------------------------------------------
    def _grads_are_finite(self) -> bool:
        by_device: dict[torch.device, list[torch.Tensor]] = defaultdict(list)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    by_device[p.grad.device].append(p.grad)
        # One fp32 sum per gradient: a NaN or an infinity anywhere makes the total non-finite. A finite total
        # proves every element finite; a non-finite one (or finite values whose sum overflows) is checked
        # element by element. One read of each gradient, against a read and a write for GradScaler's kernel.
        totals = [torch.stack([g.sum(dtype=torch.float32) for g in grads]).sum() for grads in by_device.values()]
        if all(bool(torch.isfinite(t)) for t in totals):
            return True
        bad = [i for i, p in enumerate(p for g in self.param_groups for p in g["params"])
               if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
        if not bad:
            return True
        if self.nonfinite_grad == "raise":
            raise FloatingPointError(f"{type(self).__name__}: non-finite gradient in parameter(s) at positions "
                                     f"{bad[:8]} of the optimizer's parameter list; step refused")
        self.skipped_steps += 1
        warnings.warn(f"{type(self).__name__}: non-finite gradient in parameter(s) at positions {bad[:8]}; "
                      f"step skipped (states and parameters unchanged, {self.skipped_steps} skipped so far)",
                      RuntimeWarning, stacklevel=3)
        return False

    def _wants_8bit(self, group: dict[str, Any], p: torch.Tensor) -> bool:
        return (p.numel() >= group["min_8bit_size"] and not group["fp32_states"]
                and id(p) not in self._fp32_overrides)

    def _is_8bit_state(self, state: dict[str, Any]) -> bool:
        return f"{self.STATE_SPECS[0][0]}_codes" in state

    def _init_state_(self, group: dict[str, Any], p: torch.Tensor) -> None:
        state = self.state[p]
        state["step"] = torch.tensor(0.0, dtype=torch.float32)
        if self._wants_8bit(group, p):
            bs = group["block_size"]
            state["block_size"] = bs
            for name, signed in self.STATE_SPECS:
                state[f"{name}_codes"] = torch.full((p.numel(),), get_codec(signed, p.device).zero_code,
                                                    dtype=torch.uint8, device=p.device)
                state[f"{name}_absmax"] = torch.zeros(num_blocks(p.numel(), bs), dtype=torch.float32,
                                                      device=p.device)
        else:
            for name, _ in self.STATE_SPECS:
                state[name] = torch.zeros_like(p, dtype=torch.float32, memory_format=torch.preserve_format)

    def _step_fp32(self, group: dict[str, Any], params: list[torch.Tensor], step: int) -> None:
        if self._modifies_grads(group):
            grads = [p.grad.to(torch.float32, copy=True) for p in params]
        else:
            grads = [p.grad.to(torch.float32) for p in params]
        self._grad_transform_(group, grads, params)
        states = {name: [self.state[p][name] for p in params] for name, _ in self.STATE_SPECS}
        self._update_moments_(group, grads, states, None, step == 1)
        self._apply_update_(group, params, grads, states, step, None, lambda tensors: tensors)

    def _workspace(self, device: torch.device, block_size: int, needed: int) -> Workspace:
        key = (device, block_size)
        ws = self._workspaces.get(key)
        if ws is None or ws.size < needed:
            size = min(self.chunk_size - self.chunk_size % block_size, max(needed, ws.size if ws else 0))
            ws = Workspace(max(size, block_size), block_size, tuple(n for n, _ in self.STATE_SPECS), device)
            self._workspaces[key] = ws
        return ws

    def _step_8bit(self, group: dict[str, Any], params: list[torch.Tensor], step: int) -> None:
        bs = group["block_size"]
        if self.backend == "bitsandbytes" and params[0].is_cuda:
            check_bitsandbytes_backend(bs)
            names = tuple(n for n, _ in self.STATE_SPECS)
            books = [get_codec(sg, params[0].device).book for _, sg in self.STATE_SPECS]
            for p in params:
                bnb_update_(self._bnb_kind(group), group, p, p.grad, self.state[p], names, books, step)
            return
        for p in params:
            if self.state[p]["block_size"] != bs:
                raise ValueError(f"parameter of shape {tuple(p.shape)} has 8-bit states in blocks of "
                                 f"{self.state[p]['block_size']} but its group uses block_size={bs}")
        plan_key = (bs, self.chunk_size, *(id(p) for p in params))
        plan = self._plans.get(plan_key)
        if plan is None:
            plan = plan_chunks([p.numel() for p in params], bs, self.chunk_size)
            self._plans = {plan_key: plan, **{k: v for k, v in list(self._plans.items())[-7:]}}
        device = params[0].device
        ws = self._workspace(device, bs, max(c.used for c in plan))
        flats = [flat_view(p) for p in params]
        grads = [grad_flat_view(p, p.grad) for p in params]
        states = [self.state[p] for p in params]
        for chunk in plan:
            self._run_chunk(group, chunk, ws, flats, grads, states, step)

    def _run_chunk(self, group: dict[str, Any], chunk: Chunk, ws: Workspace, flats: list[torch.Tensor],
                   grads: list[torch.Tensor], states: list[dict[str, Any]], step: int) -> None:
        """One workspace load: gather gradient, codes and absmax; update; scatter codes, absmax, parameters."""
        p_views = chunk.source_views(flats)
        chunk.gather_(grads, ws.grad, lambda length: ws.padding(length, grads[0].dtype, 0.0))
        g_views = chunk.segment_views(ws.grad)
        self._grad_transform_(group, g_views, p_views)
        per_param = {name: ([st[f"{name}_codes"] for st in states], [st[f"{name}_absmax"] for st in states])
                     for name, _ in self.STATE_SPECS}
        for name, signed in self.STATE_SPECS:  # codes widened to int32 on the way: the decoder's index
            zero = get_codec(signed, ws.device).zero_code
            codes, absmax = per_param[name]
            chunk.gather_(codes, ws.codes[name], lambda length: ws.padding(length, torch.uint8, zero))
            torch.cat(chunk.source_block_views(absmax), out=ws.absmax[name][: chunk.blocks])

        def scatter(name: str, new_codes: torch.Tensor, new_absmax: torch.Tensor) -> None:
            codes, absmax = per_param[name]
            torch._foreach_copy_(chunk.source_views(codes), chunk.segment_views(new_codes))
            torch._foreach_copy_(chunk.source_block_views(absmax), chunk.block_views(new_absmax))

        if self.compile:
            for name, (new_codes, new_absmax) in self._run_compiled(group, ws, p_views, chunk, step).items():
                scatter(name, new_codes, new_absmax)
        else:
            self._run_eager(group, ws, p_views, chunk, step, scatter)

    def _run_eager(self, group: dict[str, Any], ws: Workspace, p_views: list[torch.Tensor], chunk: Chunk,
                   step: int, scatter: Callable[[str, torch.Tensor, torch.Tensor], None]) -> None:
        """Decode -> fp32 update (block scales folded into the moment decay) -> encode, in workspace buffers."""
        n, nb, bs = chunk.used, chunk.blocks, ws.block_size
        names = [name for name, _ in self.STATE_SPECS]
        for name, signed in self.STATE_SPECS:
            get_codec(signed, ws.device).decode_(ws.codes[name][:n], ws.values[name][:n])
        whole = {name: [ws.values[name][:n]] for name in names}
        scales = {name: [ws.absmax[name][:nb]] for name in names}
        self._update_moments_(group, [ws.grad[:n]], whole, scales, step == 1)
        self._apply_update_(group, p_views, [ws.grad[:n]], whole, step, [ws.update[:n]],
                            lambda tensors: chunk.segment_views(tensors[0]))
        for name, signed in self.STATE_SPECS:  # the int32 scratch is reused by the next state: scatter now
            absmax = ws.absmax[name][:nb]
            codes = get_codec(signed, ws.device).encode_(ws.values[name][:n], absmax, bs,
                                                          (ws.codes[name], ws.update.view(torch.int32), ws.low))
            scatter(name, codes, absmax)

    def _run_compiled(self, group: dict[str, Any], ws: Workspace, p_views: list[torch.Tensor], chunk: Chunk,
                      step: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The fused compiled kernel over the whole workspace (static shapes: one compilation)."""
        math_key, math = self._fused_math(group)
        key = (type(self).__name__, math_key, ws.block_size, ws.size, ws.device)
        kernel = _COMPILED.get(key)
        if kernel is None:
            kernel = make_chunk_kernel(math, tuple(sg for _, sg in self.STATE_SPECS), ws.block_size)
            _COMPILED[key] = kernel
        names = [name for name, _ in self.STATE_SPECS]
        codecs = [get_codec(sg, ws.device) for _, sg in self.STATE_SPECS]
        for name, codec in zip(names, codecs):
            codec.decode_(ws.codes[name], ws.values[name])
        hyper = torch.tensor(self._fused_hyper(group, step, step == 1), dtype=torch.float32, device=ws.device)
        kernel(ws.grad, [ws.codes[n] for n in names], [ws.absmax[n] for n in names],
               [ws.values[n] for n in names], ws.update, [c.encode_table for c in codecs], hyper)
        torch._foreach_add_(p_views, chunk.segment_views(ws.update))
        return {name: (ws.codes[name], ws.absmax[name]) for name in names}


def decay_add_(states: list[torch.Tensor], factor: float, scales: list[torch.Tensor] | None,
               others: list[torch.Tensor], alpha: float) -> None:
    """``state <- factor * state (* scale, block-wise) + alpha * other``; one pass when scaled and alpha is 1."""
    if scales is None or alpha != 1.0:
        decay_(states, factor, scales)
        torch._foreach_add_(states, others, alpha=alpha)
        return
    for state, scale, other in zip(states, scales, others):
        blocks = state.view(scale.numel(), -1)
        torch.addcmul(other.view_as(blocks), blocks, (scale * factor)[:, None], out=blocks)


def decay_(states: list[torch.Tensor], factor: float, scales: list[torch.Tensor] | None) -> None:
    """``state <- factor * state`` in place; with ``scales``, ``state <- factor * state * scale`` block-wise."""
    if scales is None:
        torch._foreach_mul_(states, factor)
        return
    for state, scale in zip(states, scales):
        state.view(scale.numel(), -1).mul_((scale * factor)[:, None])
