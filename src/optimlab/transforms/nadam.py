"""NAdam: Adam with Nesterov momentum."""

from __future__ import annotations

import torch

from .. import checks
from ..fused.spec import Elementwise
from ..transform import Transform
from .adam import MOMENTS_CODE, init_moments, moment_scalars, update_moments


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

    @staticmethod
    def coefficients(state, hyperparams, step: int) -> tuple[float, float]:
        r"""The coefficients of :math:`g_t` and :math:`m_t`; advances the product of the
        :math:`\mu_i` in ``state`` (so call it once per step)."""
        beta1 = hyperparams["betas"][0]
        psi = hyperparams["momentum_decay"]
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * psi))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * psi))
        # Every tensor updated together has the same step and so the same product.
        mu_product = state["mu_product"].mul_(mu)[0].item()
        return (1.0 - mu) / (1.0 - mu_product), mu_next / (1.0 - mu_product * mu_next)

    def update(self, updates, state, params, hyperparams, step):
        beta1, beta2 = hyperparams["betas"]
        grad_coef, avg_coef = self.coefficients(state, hyperparams, step)
        exp_avg, exp_avg_sq = update_moments(state, updates, (beta1, beta2))
        denom = (exp_avg_sq / (1 - beta2**step)).sqrt_().add_(hyperparams["eps"])
        direction = updates * grad_coef
        direction.add_(exp_avg, alpha=avg_coef)
        return direction.div_(denom)

    def elementwise(self, hyperparams):
        def scalars(hp, step, state):
            grad_coef, avg_coef = self.coefficients(state, hp, step)
            return {
                **moment_scalars(hp["betas"]), "bias_correction2": 1 - hp["betas"][1] ** step,
                "eps": hp["eps"], "grad_coef": grad_coef, "avg_coef": avg_coef,
            }

        code = """
        R0 = $exp_avg_sq / $bias_correction2;
        SQRTS;
        u = FMA($avg_coef, $exp_avg, u * $grad_coef) / (R0 + $eps);
        """
        return Elementwise(MOMENTS_CODE + code, scalars, ("exp_avg", "exp_avg_sq"))
