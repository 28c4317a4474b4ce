"""Sign, weight decay and learning-rate scaling: the transforms every alias ends with."""

from __future__ import annotations

import torch

from .. import checks
from ..fused.spec import Elementwise
from ..transform import Transform


class maximize(Transform):
    r"""Ascend instead of descend: :math:`u \leftarrow -g` when ``maximize`` is True.

    Default ``maximize=False`` (torch.optim's). Put it first in a chain, as torch.optim
    negates the gradient before anything else sees it.
    """

    checks = {"maximize": checks.boolean}
    supports_sparse = True

    def __init__(self, maximize: bool = False) -> None:
        super().__init__(maximize=maximize)

    def update(self, updates, state, params, hyperparams, step):
        return -updates if hyperparams["maximize"] else updates

    def elementwise(self, hyperparams):
        return Elementwise("u = -u;" if hyperparams["maximize"] else "", preserves_norm=True)


class add_decayed_weights(Transform):
    r"""Add the weights, scaled: :math:`u \leftarrow u + \lambda\,\theta`.

    Where it stands in a chain decides what it means:

    * before a preconditioner (Adam's moments, ...): L2 regularization, the gradient of
      :math:`\tfrac{\lambda}{2}\lVert\theta\rVert^2` ("coupled" weight decay,
      torch.optim's ``weight_decay`` in SGD, Adam, RMSprop, ...);
    * after it, right before `scale_by_learning_rate`: decoupled weight decay,
      :math:`\theta \leftarrow \theta - \eta(\hat u + \lambda\theta)`
      (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization"; AdamW).

    Hyperparameter ``weight_decay`` (:math:`\lambda`), default 0. Sparse gradients are
    passed through only while ``weight_decay`` is 0.
    """

    checks = {"weight_decay": checks.non_negative}
    supports_sparse = True

    def __init__(self, weight_decay: float = 0.0) -> None:
        super().__init__(weight_decay=weight_decay)

    def coefficients(self, hyperparams, step, state):
        return {"weight_decay": hyperparams["weight_decay"]}

    def update(self, updates, state, params, hyperparams, step):
        weight_decay = hyperparams["weight_decay"]
        if weight_decay == 0:
            return updates
        if updates.is_sparse:
            raise RuntimeError(
                f"weight_decay={weight_decay} is not compatible with sparse gradients"
            )
        return updates.add(params, alpha=weight_decay)

    def elementwise(self, hyperparams):
        if hyperparams["weight_decay"] == 0:  # as `update`: no pass, and no work in the kernel
            return Elementwise("")
        return Elementwise("u = FMA($weight_decay, p, u);")


class scale_by_learning_rate(Transform):
    r"""The descent step: :math:`u \leftarrow -\eta_t\,u`.

    ``lr`` (:math:`\eta`) is a number >= 0 or a schedule (a callable from the 0-based
    step count to a learning rate, see `optimlab.schedules`). With a number,
    ``param_groups[i]["lr"]`` is the live learning rate that torch's lr schedulers set.
    """

    checks = {"lr": checks.learning_rate}
    supports_sparse = True

    def __init__(self, lr=1e-3) -> None:
        super().__init__(lr=lr)

    def coefficients(self, hyperparams, step, state):
        return {"neg_lr": -self.learning_rate(hyperparams, step)}

    def update(self, updates, state, params, hyperparams, step):
        return updates * self.coefficients(hyperparams, step, state)["neg_lr"]

    def apply(self, updates, state, params, hyperparams, step):
        # One fused pass (p += -lr * u), rounding exactly as torch.optim does.
        params.add_(updates, alpha=self.coefficients(hyperparams, step, state)["neg_lr"])

    def elementwise(self, hyperparams):
        return Elementwise("u = $neg_lr * u;", apply="p = FMA($neg_lr, u, p);")

    @staticmethod
    def learning_rate(hyperparams, step: int) -> float:
        lr = hyperparams["lr"]
        return float(lr(step - 1) if callable(lr) and not isinstance(lr, torch.Tensor) else lr)


class scale_by_inverse_time_decay(Transform):
    r"""Adagrad's learning-rate decay: :math:`u \leftarrow u / (1 + (t - 1)\,\delta)`.

    Hyperparameter ``lr_decay`` (:math:`\delta`), default 0 (torch.optim.Adagrad's).
    """

    checks = {"lr_decay": checks.non_negative}
    supports_sparse = True

    def __init__(self, lr_decay: float = 0.0) -> None:
        super().__init__(lr_decay=lr_decay)

    def coefficients(self, hyperparams, step, state):
        return {"factor": 1.0 / (1.0 + (step - 1) * hyperparams["lr_decay"])}

    def update(self, updates, state, params, hyperparams, step):
        if hyperparams["lr_decay"] == 0:
            return updates
        return updates * self.coefficients(hyperparams, step, state)["factor"]

    def elementwise(self, hyperparams):
        if hyperparams["lr_decay"] == 0:
            return Elementwise("")
        return Elementwise("u = u * $factor;")
