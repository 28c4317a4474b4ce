"""Layer-wise trust ratios: each tensor's step scaled to its parameter's norm."""

from __future__ import annotations

import torch

from .. import checks
from ..fused.spec import Elementwise, PerTensor
from ..transform import Transform


class scale_by_trust_ratio(Transform):
    r"""Scale each tensor's update by its trust ratio (LARS: You, Gitman & Ginsburg 2017,
    "Large Batch Training of Convolutional Networks"; LAMB: You et al. 2020, "Large Batch
    Optimization for Deep Learning"):

    .. math:: u \leftarrow u \cdot c\,\frac{\lVert\theta\rVert_2}{\lVert u\rVert_2}
              \quad\text{per tensor, and } u \text{ unchanged where either norm is 0.}

    Put after the preconditioner and the decoupled weight decay, before the learning rate:
    ``chain(scale_by_adam(), add_decayed_weights(wd), scale_by_trust_ratio(), scale_by_learning_rate(lr))``
    is LAMB. Hyperparameter ``trust_coefficient`` (:math:`c`, default 1.0, optax's). LARS's
    ratio, whose denominator adds the two norms, is `scale_by_lars`. On the fused path the two norms are measured in the kernel (in double, per
    tensor), from the updates this part receives.
    """

    checks = {"trust_coefficient": checks.positive}

    def __init__(self, trust_coefficient: float = 1.0) -> None:
        super().__init__(trust_coefficient=trust_coefficient)

    def coefficients(self, hyperparams, step, state):
        return {"trust_coefficient": hyperparams["trust_coefficient"]}

    def update(self, updates, state, params, hyperparams, step):
        c = self.coefficients(hyperparams, step, state)["trust_coefficient"]
        ratios = [
            torch.where((p_norm > 0) & (u_norm > 0), c * p_norm / u_norm, 1.0)
            for p_norm, u_norm in zip(params.norms(), updates.norms())
        ]
        return updates * ratios

    def elementwise(self, hyperparams):
        return Elementwise("u = u * $trust;", per_tensor=PerTensor(
            sums=(("p_squares", "(double)p * (double)p"), ("u_squares", "(double)u * (double)u")),
            scalars=(("trust", "$p_squares > 0 && $u_squares > 0 ? "
                               "$trust_coefficient * sqrt($p_squares) / sqrt($u_squares) : 1.0"),),
        ))


class scale_by_lars(Transform):
    r"""LARS's local learning rate (You, Gitman & Ginsburg 2017, "Large Batch Training of
    Convolutional Networks", Algorithm 1), with its weight decay:

    .. math:: u \leftarrow \lambda^l\,(g + \beta\,\theta), \qquad
              \lambda^l = \eta\,\frac{\lVert\theta\rVert_2}{\lVert g\rVert_2 + \beta\,\lVert\theta\rVert_2}
              \quad\text{per tensor } l \text{, and } \lambda^l = 1 \text{ where }
              \lVert\theta\rVert = 0 \text{ or the denominator is 0.}

    The denominator adds the two norms (the paper's), where `scale_by_trust_ratio` after
    `add_decayed_weights` would take :math:`\lVert g + \beta\theta\rVert`. Put it first
    (after `maximize`), before the learning rate and the momentum: LARS is
    ``chain(scale_by_lars(eta, wd), scale_by_learning_rate(lr), trace(momentum))``.
    Hyperparameters ``trust_coefficient`` (:math:`\eta`, default 1e-3, the paper's and
    pytorch-optimizer's) and ``weight_decay`` (:math:`\beta`, default 0). On the fused path
    the two norms are measured in the kernel (in double, per tensor).
    """

    checks = {"trust_coefficient": checks.positive, "weight_decay": checks.non_negative}

    def __init__(self, trust_coefficient: float = 1e-3, weight_decay: float = 0.0) -> None:
        super().__init__(trust_coefficient=trust_coefficient, weight_decay=weight_decay)

    def coefficients(self, hyperparams, step, state):
        return {"trust_coefficient": hyperparams["trust_coefficient"], "weight_decay": hyperparams["weight_decay"]}

    def update(self, updates, state, params, hyperparams, step):
        k = self.coefficients(hyperparams, step, state)
        c, weight_decay = k["trust_coefficient"], k["weight_decay"]
        ratios = []
        for p_norm, g_norm in zip(params.norms(), updates.norms()):
            denominator = g_norm + weight_decay * p_norm
            ratios.append(torch.where((p_norm > 0) & (denominator > 0), c * p_norm / denominator, 1.0))
        if weight_decay != 0:
            updates = updates.add(params, alpha=weight_decay)
        return updates * ratios

    def elementwise(self, hyperparams):
        decayed = "FMA($weight_decay, p, u)" if hyperparams["weight_decay"] != 0 else "u"
        return Elementwise(f"u = {decayed} * $ratio;", per_tensor=PerTensor(
            sums=(("p_squares", "(double)p * (double)p"), ("u_squares", "(double)u * (double)u")),
            scalars=(("ratio", "$p_squares > 0 && sqrt($u_squares) + $weight_decay * sqrt($p_squares) > 0 ? "
                               "$trust_coefficient * sqrt($p_squares) / "
                               "(sqrt($u_squares) + $weight_decay * sqrt($p_squares)) : 1.0"),),
        ))
