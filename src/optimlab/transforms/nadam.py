"""NAdam: Adam with Nesterov momentum."""

from __future__ import annotations

import torch

from .. import checks
from ..fused.spec import Elementwise
from ..transform import Transform
from .adam import MOMENTS_CODE, init_moments, moment_coefficients, update_moments


class scale_by_nadam(Transform):
    r"""NAdam (Dozat 2016, "Incorporating Nesterov Momentum into Adam"), with the
    momentum schedule :math:`\mu_t = \beta_1 (1 - \tfrac12 0.96^{t\psi})`:

    .. math:: u \leftarrow \frac{1}{\sqrt{v_t/(1-\beta_2^t)} + \epsilon}
              \left[\frac{1-\mu_t}{1-\prod_{i\le t}\mu_i}\, g_t
              + \frac{\mu_{t+1}}{1-\prod_{i\le t+1}\mu_i}\, m_t\right]

    with :math:`m_t, v_t` Adam's moments. Defaults (torch.optim.NAdam's):
    ``betas=(0.9, 0.999)``, ``eps=1e-8``, ``momentum_decay=4e-3`` (:math:`\psi`);
    the alias's ``lr`` is 2e-3. The product of the :math:`\mu_i` is kept as state, a 0-d
    tensor of the parameter's dtype (torch.optim keeps it in the default dtype, and casts it
    to the parameter's dtype when loading a state_dict), so that changing ``betas`` mid-run
    behaves as in torch.optim.
    """

    checks = {"betas": checks.betas, "eps": checks.positive, "momentum_decay": checks.non_negative}
    state_keys = ("exp_avg", "exp_avg_sq", "mu_product")

    def __init__(self, betas=(0.9, 0.999), eps: float = 1e-8, momentum_decay: float = 4e-3) -> None:
        super().__init__(betas=betas, eps=eps, momentum_decay=momentum_decay)

    def init(self, params, hyperparams):
        state = init_moments(params)
        state["mu_product"] = params.wrap(
            [torch.ones((), dtype=p.dtype, device=p.device) for p in params]
        )
        return state

    def coefficients(self, hyperparams, step, state):
        r"""Adam's, and the coefficients of :math:`g_t` and :math:`m_t`; advances the product
        of the :math:`\mu_i` in ``state`` (so it is called once per step)."""
        beta1, beta2 = hyperparams["betas"]
        psi = hyperparams["momentum_decay"]
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * psi))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * psi))
        # Every tensor updated together has the same step and so the same product.
        mu_product = state["mu_product"].mul_(mu)[0].item()
        return {
            **moment_coefficients((beta1, beta2)), "bias_correction2": 1 - beta2**step, "eps": hyperparams["eps"],
            "grad_coef": (1.0 - mu) / (1.0 - mu_product), "avg_coef": mu_next / (1.0 - mu_product * mu_next),
        }

    def update(self, updates, state, params, hyperparams, step):
        k = self.coefficients(hyperparams, step, state)
        exp_avg, exp_avg_sq = update_moments(state, updates, k)
        denom = (exp_avg_sq / k["bias_correction2"]).sqrt_().add_(k["eps"])
        direction = updates * k["grad_coef"]
        direction.add_(exp_avg, alpha=k["avg_coef"])
        return direction.div_(denom)

    def elementwise(self, hyperparams):
        code = """
        R0 = $exp_avg_sq / $bias_correction2;
        SQRTS;
        u = FMA($avg_coef, $exp_avg, u * $grad_coef) / (R0 + $eps);
        """
        return Elementwise(MOMENTS_CODE + code, ("exp_avg", "exp_avg_sq"))
