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
    is LAMB. Hyperparameter ``trust_coefficient`` (:math:`c`, default 1.0, optax's; LARS
    uses 1e-3). On the fused path the two norms are measured in the kernel (in double, per
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
