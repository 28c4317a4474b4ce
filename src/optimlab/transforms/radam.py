"""RAdam: Adam with a rectified adaptive learning rate."""

from __future__ import annotations

import math

from .. import checks
from ..fused.spec import Elementwise
from ..transform import Transform
from .adam import MOMENTS_CODE, init_moments, moment_coefficients, update_moments


class scale_by_radam(Transform):
    r"""RAdam (Liu et al. 2020, "On the Variance of the Adaptive Learning Rate and Beyond"):

    .. math:: \rho_\infty = \frac{2}{1-\beta_2} - 1, \quad
              \rho_t = \rho_\infty - \frac{2t\beta_2^t}{1-\beta_2^t}, \quad
              r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\rho_t}},

    and :math:`u \leftarrow \hat m_t\, r_t \sqrt{1-\beta_2^t} / (\sqrt{v_t} + \epsilon)` when
    :math:`\rho_t > 5`, else the un-adapted :math:`u \leftarrow \hat m_t` (SGD with
    momentum while the variance estimate is unreliable). Defaults (torch.optim.RAdam's):
    ``betas=(0.9, 0.999)``, ``eps=1e-8``.
    """

    checks = {"betas": checks.betas, "eps": checks.positive}
    state_keys = ("exp_avg", "exp_avg_sq")

    def __init__(self, betas=(0.9, 0.999), eps: float = 1e-8) -> None:
        super().__init__(betas=betas, eps=eps)

    def init(self, params, hyperparams):
        return init_moments(params)

    @staticmethod
    def adaptive_scale(beta2: float, step: int) -> float | None:
        r""":math:`r_t \sqrt{1-\beta_2^t}`, or None while :math:`\rho_t \le 5`."""
        bias_correction2 = 1 - beta2**step
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * beta2**step / bias_correction2
        if rho_t <= 5.0:
            return None
        rectification = math.sqrt(
            (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
        )
        return rectification * math.sqrt(bias_correction2)

    def coefficients(self, hyperparams, step, state):
        beta1, beta2 = hyperparams["betas"]
        scale = self.adaptive_scale(beta2, step)
        return {
            **moment_coefficients((beta1, beta2)), "bias_correction1": 1 - beta1**step,
            "adaptive": float(scale is not None), "scale": scale or 0.0, "eps": hyperparams["eps"],
        }

    def update(self, updates, state, params, hyperparams, step):
        k = self.coefficients(hyperparams, step, state)
        exp_avg, exp_avg_sq = update_moments(state, updates, k)
        corrected_mean = exp_avg / k["bias_correction1"]
        if not k["adaptive"]:
            return corrected_mean
        adaptive = exp_avg_sq.sqrt().add_(k["eps"])
        return corrected_mean.mul_(k["scale"]).div_(adaptive)

    def elementwise(self, hyperparams):
        code = """
        R0 = $exp_avg_sq;
        SQRTS;
        T mean = $exp_avg / $bias_correction1;
        u = $adaptive != 0 ? mean * $scale / (R0 + $eps) : mean;
        """
        return Elementwise(MOMENTS_CODE + code, ("exp_avg", "exp_avg_sq"))
