"""SWATS: Adam that switches itself to SGD."""

from __future__ import annotations

import math

import torch

from .. import checks
from ..transform import Transform
from .basic import scale_by_learning_rate


class scale_by_swats(Transform):
    r"""SWATS (Keskar & Socher 2017, "Improving Generalization Performance by Switching
    from Adam to SGD", Algorithm 1): Adam until its steps look like SGD's with a learning
    rate it estimates, then SGD with momentum at that rate. The whole step, learning rate
    included (it ends a chain, in place of `scale_by_learning_rate`).

    Adam phase, with :math:`m, a` Adam's moments (:math:`\beta_1, \beta_2`):

    .. math:: p_t = -\eta\,\frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}\,\frac{m_t}{\sqrt{a_t} + \epsilon}

    and, where :math:`p_t^\top g_t \ne 0`, the projection of :math:`p_t` onto the gradient
    and its bias-corrected average:

    .. math:: \gamma_t = \frac{p_t^\top p_t}{-p_t^\top g_t}, \qquad
              \lambda_t = \beta_2\lambda_{t-1} + (1-\beta_2)\gamma_t, \qquad
              \Lambda_t = \frac{\lambda_t}{1-\beta_2^t}

    If :math:`t > 1`, :math:`\Lambda_t > 0` and :math:`|\Lambda_t - \gamma_t| < \epsilon`,
    every later step is SGD: :math:`v \leftarrow \beta_1 v + g`,
    :math:`u = -(1-\beta_1)\Lambda_t v`.

    The products and the switch are per parameter tensor (the paper writes the weights as
    one vector: the same with one tensor); ``sgd_lr`` holds :math:`\Lambda` once
    switched (0 before), ``swats_lambda`` :math:`\lambda`. Hyperparameters ``lr``
    (:math:`\eta`, 1e-3), ``betas`` ((0.9, 0.999)) and ``eps`` (:math:`\epsilon`, 1e-6):
    pytorch-optimizer's defaults. One device-to-host read per tensor and step (the test).
    """

    checks = {"lr": checks.learning_rate, "betas": checks.betas, "eps": checks.positive}
    state_keys = ("exp_avg", "exp_avg_sq", "momentum_buffer", "swats_lambda", "sgd_lr")

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps: float = 1e-6) -> None:
        super().__init__(lr=lr, betas=betas, eps=eps)

    def init(self, params, hyperparams):
        scalars = params.wrap([torch.zeros((), dtype=p.dtype, device=p.device) for p in params])
        return {"exp_avg": params.zeros_like(), "exp_avg_sq": params.zeros_like(),
                "momentum_buffer": params.zeros_like(), "swats_lambda": scalars, "sgd_lr": scalars.clone()}

    def update(self, updates, state, params, hyperparams, step):
        beta1, beta2 = hyperparams["betas"]
        eps = hyperparams["eps"]
        bias1, bias2 = 1 - beta1**step, 1 - beta2**step
        adam_size = -scale_by_learning_rate.learning_rate(hyperparams, step) * math.sqrt(bias2) / bias1
        steps = []
        for i, g in enumerate(updates):
            sgd_lr = state["sgd_lr"][i]
            if sgd_lr > 0:
                v = state["momentum_buffer"][i].mul_(beta1).add_(g)
                steps.append(v * (-(1 - beta1) * sgd_lr))
                continue
            m = state["exp_avg"][i].lerp_(g, 1 - beta1)
            a = state["exp_avg_sq"][i].mul_(beta2).addcmul_(g, g, value=1 - beta2)
            p = m / (a.sqrt() + eps) * adam_size
            p_g = torch.dot(p.flatten(), g.flatten())
            if p_g != 0:
                gamma = torch.dot(p.flatten(), p.flatten()) / -p_g
                estimate = state["swats_lambda"][i].mul_(beta2).add_(gamma, alpha=1 - beta2) / bias2
                if step > 1 and estimate > 0 and abs(estimate - gamma) < eps:
                    sgd_lr.copy_(estimate)
            steps.append(p)
        return updates.wrap(steps)
