"""Lookahead around any torch optimizer (the transform form is `optimlab.lookahead`)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch

from . import checks


class Lookahead(torch.optim.Optimizer):
    r"""``Lookahead(optimizer, k=5, alpha=0.5)``: every ``k`` steps of ``optimizer`` (any
    torch optimizer), the slow weights move :math:`\phi \leftarrow \phi + \alpha(\theta - \phi)`
    and the parameters are set to them (Zhang et al. 2019; the math of `optimlab.lookahead`).

    ``param_groups``, ``state`` and ``zero_grad`` are ``optimizer``'s, so lr schedulers
    drive it; ``state_dict()`` holds ``optimizer``'s and the slow weights, and resumes.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, k: int = 5, alpha: float = 0.5) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {optimizer!r}")
        checks.positive_integer("k", k)
        checks.unit_interval("alpha", alpha)
        self.optimizer, self.k, self.alpha = optimizer, k, alpha
        self.defaults = optimizer.defaults
        self._optimizer_step_pre_hooks: OrderedDict = OrderedDict()
        self._optimizer_step_post_hooks: OrderedDict = OrderedDict()
        self.steps = 0
        self.slow_params = [p.detach().clone() for p in self._params()]

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    @property
    def state(self):
        return self.optimizer.state

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self, closure=None):
        loss = self.optimizer.step(closure)
        self.steps += 1
        if self.steps % self.k == 0:
            for slow, p in zip(self.slow_params, self._params()):
                slow.lerp_(p, self.alpha)
                p.copy_(slow)
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(),
                "lookahead": {"k": self.k, "alpha": self.alpha, "steps": self.steps,
                              "slow_params": [s.clone() for s in self.slow_params]}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict["lookahead"]
        params = self._params()
        if len(saved["slow_params"]) != len(params):
            raise ValueError(f"the checkpoint has slow weights for {len(saved['slow_params'])} parameters, "
                             f"this optimizer has {len(params)}")
        self.optimizer.load_state_dict(state_dict["optimizer"])
        self.k, self.alpha, self.steps = saved["k"], saved["alpha"], saved["steps"]
        self.slow_params = [s.to(device=p.device, dtype=p.dtype).clone() for s, p in zip(saved["slow_params"], params)]

    def __repr__(self) -> str:
        return f"Lookahead({self.optimizer!r}, k={self.k}, alpha={self.alpha})"
