"""Any gradient transformation as a real ``torch.optim.Optimizer``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from . import checks
from .tensorlist import TensorList
from .transform import Transform

_EXECUTION_OPTIONS = {"foreach": None}


class Optimizer(torch.optim.Optimizer):
    """Wrap a gradient transformation (usually a `chain`) as a torch optimizer.

    ``hyperparams`` override the transform's defaults for every group; each param group
    may override them again, and ``param_groups[i][name]`` is read at every step, so
    ``torch.optim.lr_scheduler`` and any hand-written schedule work unchanged.

    Execution per group: ``foreach=None`` or ``True`` runs each operation over all the
    group's tensors with torch's multi-tensor kernels; ``foreach=False`` loops over the
    tensors (the path sparse gradients always take).

    State per parameter, as in torch.optim: ``state[p]["step"]`` (an int) and the
    transform's buffers. Parameters whose ``grad`` is None are skipped and get no state.

    Example::

        transform = chain(clip_by_global_norm(1.0), scale_by_adam(),
                          add_decayed_weights(0.01), scale_by_learning_rate(3e-4))
        optimizer = Optimizer(model.parameters(), transform)
    """

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
        defaults = {**transform.hyperparams, **_EXECUTION_OPTIONS, **hyperparams}
        self._validate(defaults)
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any]) -> None:
        self.transform.validate(group)
        if group.get("foreach") is not None:
            checks.boolean("foreach", group["foreach"])

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        self._validate({**self.defaults, **param_group})
        super().add_param_group(param_group)

    @torch.no_grad()
    def step(self, closure=None):
        """Take one step; ``closure`` re-evaluates the model and returns the loss."""
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
        sparse = any(p.grad.is_sparse for p in params)
        if sparse and not self.transform.supports_sparse:
            raise RuntimeError(
                f"{type(self).__name__} does not support sparse gradients; "
                "use optimlab.SGD or optimlab.Adagrad, or dense gradients"
            )
        foreach = group["foreach"] is not False and not sparse
        fresh = [p for p in params if not self.state[p]]
        if fresh:
            self._init_state(fresh, group, foreach)
        # Tensors with the same step count (and so the same buffers) are updated together.
        buckets: dict[tuple, list[Tensor]] = defaultdict(list)
        for p in params:
            state = self.state[p]
            buckets[(state["step"], tuple(sorted(state)))].append(p)
        for (step, keys), bucket in buckets.items():
            self._step_bucket(bucket, [k for k in keys if k != "step"], group, step + 1, foreach)

    def _init_state(self, params: list[Tensor], group: dict[str, Any], foreach: bool) -> None:
        buffers = self.transform.init(TensorList(map(_real, params), foreach), group)
        for i, p in enumerate(params):
            self.state[p]["step"] = 0
            for key, tensors in buffers.items():
                self.state[p][key] = tensors[i]

    def _step_bucket(self, params: list[Tensor], keys: list[str], group, step: int, foreach: bool) -> None:
        states = [self.state[p] for p in params]
        buffers = {key: TensorList([s[key] for s in states], foreach) for key in keys}
        real_params = TensorList([_real(p) for p in params], foreach)
        grads = TensorList([_real(p.grad) for p in params], foreach)
        self.transform.apply(real_params, grads, buffers, group, step)
        for state in states:
            state["step"] = step
        for key, tensors in buffers.items():
            for state, tensor in zip(states, tensors):
                state[key] = tensor


def _real(tensor: Tensor) -> Tensor:
    """Complex tensors are optimized as pairs of reals, as torch.optim does."""
    return torch.view_as_real(tensor) if tensor.is_complex() else tensor
