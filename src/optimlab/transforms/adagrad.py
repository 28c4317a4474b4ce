"""Adagrad's per-coordinate scaling."""

from __future__ import annotations

import torch

from .. import checks
from ..fused.spec import Elementwise
from ..transform import Transform


class scale_by_adagrad(Transform):
    r"""Divide by the root of the summed squared gradients (Duchi, Hazan & Singer 2011,
    "Adaptive Subgradient Methods for Online Learning and Stochastic Optimization"):

    .. math:: G_t = G_{t-1} + g_t^2, \quad G_0 = G_{\text{init}}, \qquad
              u \leftarrow g_t / (\sqrt{G_t} + \epsilon).

    Hyperparameters ``initial_accumulator_value`` (:math:`G_{\text{init}}`, default 0;
    TensorFlow's Adagrad starts at 0.1) and ``eps`` (default 1e-10), torch.optim's.
    Sparse gradients update only the rows they touch, as torch.optim.Adagrad does.
    """

    checks = {"initial_accumulator_value": checks.non_negative, "eps": checks.positive}
    state_keys = ("sum",)
    supports_sparse = True

    def __init__(self, initial_accumulator_value: float = 0.0, eps: float = 1e-10) -> None:
        super().__init__(initial_accumulator_value=initial_accumulator_value, eps=eps)

    def init(self, params, hyperparams):
        return {"sum": params.full_like(hyperparams["initial_accumulator_value"])}

    def coefficients(self, hyperparams, step, state):
        return {"eps": hyperparams["eps"]}

    def update(self, updates, state, params, hyperparams, step):
        eps = self.coefficients(hyperparams, step, state)["eps"]
        if updates.is_sparse:  # one tensor at a time: a group may mix sparse and dense gradients
            return updates.wrap([
                (_sparse_step if g.is_sparse else _dense_step)(g, s, eps)
                for g, s in zip(updates, state["sum"])
            ])
        return _dense_step(updates, state["sum"], eps)

    def elementwise(self, hyperparams):
        return Elementwise(
            "$sum = FMA(u, u, $sum); R0 = $sum; SQRTS; u = u / (R0 + $eps);", ("sum",)
        )


def _dense_step(grad, accumulator, eps: float):
    """G += g^2; g / (sqrt(G) + eps): for a Tensor or a TensorList."""
    accumulator.addcmul_(grad, grad, value=1)
    return grad / accumulator.sqrt().add_(eps)


def _sparse_step(grad: torch.Tensor, accumulator: torch.Tensor, eps: float) -> torch.Tensor:
    """The dense step restricted to the gradient's nonzero rows."""
    grad = grad.coalesce()
    indices, values = grad._indices(), grad._values()
    accumulator.add_(torch.sparse_coo_tensor(indices, values.pow(2), grad.shape))
    std = accumulator.sparse_mask(grad)._values().sqrt_().add_(eps)
    return torch.sparse_coo_tensor(indices, values / std, grad.shape)
