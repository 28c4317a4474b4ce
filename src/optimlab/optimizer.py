"""Any gradient transformation as a real ``torch.optim.Optimizer``."""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from . import checks, torch_state
from .fused import engine as fused_engine
from .tensorlist import TensorList
from .transform import Transform

_EXECUTION_OPTIONS = {"foreach": None, "fused": None}
# Per-tensor work of every step, as C-level passes (a step over 2,000 tensors is mostly this).
_is_sparse, _dtype_of = operator.attrgetter("is_sparse"), operator.attrgetter("dtype")
_step_of = operator.itemgetter("step")
_HALF = {torch.float16, torch.bfloat16}


class Optimizer(torch.optim.Optimizer):
    """Wrap a gradient transformation (usually a `chain`) as a torch optimizer.

    ``hyperparams`` override the transform's defaults for every group; each param group
    may override them again, and ``param_groups[i][name]`` is read at every step, so
    ``torch.optim.lr_scheduler`` and any hand-written schedule work unchanged.

    Execution per group (torch.optim's two flags; docs/performance.md has the numbers):

    * default (``fused=None, foreach=None``): the fused path, one compiled kernel per
      chain and dtype (C on the CPU, CUDA on a GPU) stepping all the group's tensors in
      one pass over memory, from the
      step where it pays for its building (at once for large models, never in short
      runs of tiny ones: a rule of size and step only, so a seed gives the same numbers
      whatever the kernel cache holds); until then, and for anything the kernel does
      not cover, the multi-tensor path;
    * ``fused=True``: the fused path from the first step;
    * ``foreach=True`` (or ``fused=False``): each operation over all the group's
      tensors with torch's multi-tensor kernels, eagerly;
    * ``foreach=False``: a loop over the tensors (the path sparse gradients always take).

    The eager paths are the reference; the fused path equals them to rounding (IEEE
    square roots, as torch's fused kernels take them) and bit for bit with
    ``OPTIMLAB_BIT_EXACT=1``. ``torch.compile`` runs `step` untraced.

    State per parameter, as in torch.optim: ``state[p]["step"]`` (an int) and the
    transform's buffers, in the parameter's dtype; a param group with
    ``"state_dtype": torch.float32`` keeps the buffers of its float16 and bfloat16
    parameters in float32 (the fused kernel computes in float32 either way). Parameters whose ``grad`` is None are skipped and get no state.

    ``state_dict`` and ``load_state_dict`` speak torch.optim's format (``optimlab.torch_state``):
    an alias loads its torch.optim twin's checkpoint, and the twin loads the alias's.

    Example::

        transform = chain(clip_by_global_norm(1.0), scale_by_adam(),
                          add_decayed_weights(0.01), scale_by_learning_rate(3e-4))
        optimizer = Optimizer(model.parameters(), transform)
    """

    #: Buffers the torch.optim twin names otherwise (ours -> torch's), see `optimlab.torch_state`.
    torch_state_names: dict[str, str] = {}

    def __init__(self, params: Iterable[Any], transform: Transform, **hyperparams: Any) -> None:
        if not isinstance(transform, Transform):
            raise TypeError(f"transform must be a Transform, got {transform!r}")
        known = set(transform.hyperparams) | set(_EXECUTION_OPTIONS)
        unknown = sorted(set(hyperparams) - known)
        if unknown:
            raise TypeError(
                f"unexpected hyperparameter(s) {', '.join(unknown)}; "
                f"this optimizer takes: {', '.join(sorted(known))}"
            )
        self.transform = transform
        # Options that choose the chain at construction, kept in the twin's param groups.
        self.fixed_options: dict[str, Any] = {}
        defaults = {**transform.hyperparams, **_EXECUTION_OPTIONS, **hyperparams}
        self._validate(defaults)
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any]) -> None:
        self.transform.validate(group)
        for option in _EXECUTION_OPTIONS:
            if group.get(option) is not None:
                checks.boolean(option, group[option])
        if group.get("foreach") and group.get("fused"):
            raise ValueError("fused=True and foreach=True cannot be set together")
        if group.get("fused"):
            fused_engine.check(self.transform, group)
        if group.get("state_dtype") not in (None, torch.float32):
            raise ValueError(f"state_dtype must be None or torch.float32, got {group['state_dtype']!r}")

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        self._validate({**self.defaults, **param_group})
        super().add_param_group(param_group)

    def __getstate__(self) -> dict[str, Any]:
        # torch.optim pickles (and deep-copies) an optimizer's defaults, state and param
        # groups only: the chain comes too, so that a copy steps as the original.
        return {**super().__getstate__(), "transform": self.transform, "fixed_options": self.fixed_options}

    def state_dict(self) -> dict[str, Any]:
        return torch_state.to_torch(super().state_dict(), self.torch_state_names, self.fixed_options)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        converted = torch_state.from_torch(state_dict, self.torch_state_names, self.fixed_options, self.defaults,
                                               self.param_groups)
        for group in converted["param_groups"]:
            self._validate(group)
        super().load_state_dict(converted)
        # torch casts floating-point state to its parameter's dtype; 0-d float64 accumulators
        # (Prodigy's d, Schedule-Free's weight sum) stay float64, as saved, or a float32 model
        # would resume with them rounded.
        saved_ids = [i for group in converted["param_groups"] for i in group["params"]]
        params = [p for group in self.param_groups for p in group["params"]]
        for index, param in zip(saved_ids, params):
            for key, value in converted["state"].get(index, {}).items():
                if torch.is_tensor(value) and value.ndim == 0 and value.dtype == torch.float64 and key != "step":
                    self.state[param][key] = value.to(param.device, copy=True)

    # torch.compile runs the step as it is, never traced: it already is one compiled kernel
    # per group, with the hyperparameters passed at each call, so a scheduler changing
    # them every step never recompiles (traced, every new float would: a new graph).
    # torch._disable_dynamo is torch.compiler.disable importing torch._dynamo at the first call
    # rather than here (1.3 s of every `import optimlab`), as torch.optim's own steps use it.
    @torch._disable_dynamo
    @torch.no_grad()
    def step(self, closure=None):
        """Take one step; ``closure`` re-evaluates the model and returns the loss."""
        if torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
            raise RuntimeError(
                f"{type(self).__name__}.step cannot be captured in a CUDA graph: it reads its "
                "hyperparameters (lr, ...) as Python numbers at each step, so a replay would "
                "repeat the captured ones"
            )
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._step_group(group)
        return loss

    def _step_group(self, group: dict[str, Any]) -> None:
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        grads = [p.grad for p in params]
        sparse = any(map(_is_sparse, grads))
        if sparse and not self.transform.supports_sparse:
            raise RuntimeError(
                f"{type(self).__name__} does not support sparse gradients; "
                "use optimlab.SGD or optimlab.Adagrad, or dense gradients"
            )
        foreach = group["foreach"] is not False and not sparse
        fused = group.get("fused")
        if sparse or (fused is None and group["foreach"] is not None):
            fused = False
        states = list(map(self.state.__getitem__, params))
        fresh = [p for p, state in zip(params, states) if not state]
        if fresh:
            self._init_state(fresh, group, foreach)
        # Tensors with the same step count (and so the same buffers) are updated together.
        first = states[0]
        step, keys = first["step"], first.keys()
        if set(map(_step_of, states)) == {step} and all(map(keys.__eq__, map(dict.keys, states))):
            buckets = {(step, tuple(sorted(keys))): (params, grads, states)}
        else:
            buckets = defaultdict(lambda: ([], [], []))
            for p, g, state in zip(params, grads, states):
                bucket = buckets[(state["step"], tuple(sorted(state)))]
                bucket[0].append(p)
                bucket[1].append(g)
                bucket[2].append(state)
        for (step, keys), (bucket, bucket_grads, bucket_states) in buckets.items():
            keys = [k for k in keys if k != "step"]
            self._step_bucket(bucket, bucket_grads, bucket_states, keys, group, step + 1, foreach, fused)

    def _init_state(self, params: list[Tensor], group: dict[str, Any], foreach: bool) -> None:
        buffers = self.transform.init(TensorList(map(_real, params), foreach), group)
        for i, p in enumerate(params):
            self.state[p]["step"] = 0
            for key, tensors in buffers.items():
                if tensors[i] is not None:  # a `partition` keeps a buffer for some parameters only
                    self.state[p][key] = _in_state_dtype(tensors[i], group)

    def _step_bucket(self, params, grads, states, keys, group, step: int, foreach: bool, fused) -> None:
        buffers = {key: TensorList([s[key] for s in states], foreach) for key in keys}
        if any(dtype.is_complex for dtype in set(map(_dtype_of, params))):
            params, grads = [_real(p) for p in params], [_real(g) for g in grads]
        real_params = TensorList(params, foreach)
        grads = TensorList(grads, foreach)
        if not (fused is not False and fused_engine.step(
            self.transform, real_params, grads, buffers, group, step, force=bool(fused)
        )):
            if not (fused is not False and fused_engine.step_in_segments(
                self.transform, real_params, grads, buffers, group, step
            )):
                self._apply_eagerly(params, grads, buffers, real_params, group, step)
            # The eager parts may have made or replaced buffers.
            for key, tensors in buffers.items():
                for state, tensor in zip(states, tensors):
                    if tensor is not None:
                        state[key] = _in_state_dtype(tensor, group)
        for state in states:
            state["step"] = step

    def _apply_eagerly(self, params, grads, buffers, real_params, group, step: int) -> None:
        if group.get("state_dtype") is not None and _HALF & set(map(_dtype_of, params)):
            # float32 state: the eager math in float32 too, on float32 copies of the
            # parameters and gradients (the kernel's registers), rounded once at the end.
            widen = lambda t: t.to(group["state_dtype"]) if t.dtype in _HALF else t  # noqa: E731
            wide = real_params.wrap(list(map(widen, params)))
            self.transform.apply(grads.wrap(list(map(widen, grads))), buffers, wide, group, step)
            for p, w in zip(params, wide):
                if w is not p:
                    p.copy_(w)
        else:
            self.transform.apply(grads, buffers, real_params, group, step)


def _in_state_dtype(tensor: Tensor | int, group: dict[str, Any]) -> Tensor | int:
    """A 16-bit float buffer in float32 where the group sets ``state_dtype=torch.float32``
    (by default state keeps the parameter's dtype, as in torch.optim). Numbers (PSGD-Kron's
    seeds: torch's ``load_state_dict`` would cast a tensor to the parameter's dtype) stay."""
    if group.get("state_dtype") is not None and isinstance(tensor, Tensor) and tensor.dtype in _HALF:
        return tensor.to(group["state_dtype"])
    return tensor


def _real(tensor: Tensor) -> Tensor:
    """Complex tensors are optimized as pairs of reals, as torch.optim does."""
    return torch.view_as_real(tensor) if tensor.is_complex() else tensor
