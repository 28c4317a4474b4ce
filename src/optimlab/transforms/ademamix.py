"""AdEMAMix: Adam whose step mixes a fast and a slow EMA of the gradient."""

from __future__ import annotations

import math
from typing import Any

from .. import checks
from ..fused.spec import Elementwise
from ..transform import Transform
from .adam import MOMENTS_CODE, bias_corrected_coefficients


def _betas3(name: str, value: Any) -> None:
    if not isinstance(value, (tuple, list)) or len(value) != 3:
        raise ValueError(f"{name} must be a triple (beta1, beta2, beta3), got {value!r}")
    for i, beta in enumerate(value):
        checks.decay_rate(f"{name}[{i}]", beta)


def _inverse_log(beta: float) -> float:
    """1 / ln(beta), 0 (its limit) for beta = 0."""
    return 1 / math.log(beta) if beta > 0 else 0.0


def alpha_beta3_at(hyperparams, step: int) -> tuple[float, float]:
    r"""AdEMAMix's :math:`(\alpha_t, \beta_{3,t})` at ``step`` (the paper's warm-ups:
    :math:`\alpha` linear, :math:`\beta_3` linear in the EMA's half-life, from
    :math:`\beta_1`, both reaching their values at ``t_alpha_beta3``)."""
    beta1, _, beta3 = hyperparams["betas"]
    alpha, warmup = hyperparams["alpha"], hyperparams["t_alpha_beta3"]
    if warmup is None or step >= warmup:
        return alpha, beta3
    a = step / warmup
    # ln beta3_t = ln b1 ln b3 / ((1 - a) ln b3 + a ln b1), written with 1 / ln (for beta1 = 0).
    inverse = (1 - a) * _inverse_log(beta1) + a * _inverse_log(beta3)
    return a * alpha, min(math.exp(1 / inverse) if inverse else 0.0, beta3)


class scale_by_ademamix(Transform):
    r"""AdEMAMix (Pagliardini, Ablin & Grangier 2024, "The AdEMAMix Optimizer: Better,
    Faster, Older", Algorithm 1):

    .. math:: m_1 \leftarrow \beta_1 m_1 + (1-\beta_1) g_t, \quad
              m_2 \leftarrow \beta_{3,t} m_2 + (1-\beta_{3,t}) g_t, \quad
              v \leftarrow \beta_2 v + (1-\beta_2) g_t^2,

    .. math:: u \leftarrow \frac{m_1 / (1-\beta_1^t) + \alpha_t m_2}{\sqrt{v / (1-\beta_2^t)} + \epsilon},
              \quad \alpha_t = \alpha \min(1, t / T), \quad
              \beta_{3,t} = \min\Big(\exp\frac{\ln\beta_1 \ln\beta_3}
                  {(1 - t/T)\ln\beta_3 + (t/T)\ln\beta_1}, \beta_3\Big)

    (:math:`T` = ``t_alpha_beta3``; None: no warm-up, :math:`\alpha_t = \alpha`,
    :math:`\beta_{3,t} = \beta_3`). Adam's step plus a slow EMA (:math:`\beta_3 = 0.9999`:
    a memory of ~10k steps), not bias-corrected, weighted by :math:`\alpha`: old gradients
    keep pushing while the fast EMA follows the recent ones. The warm-up keeps the slow
    EMA from swamping the first steps. Three buffers (``exp_avg``, ``exp_avg_sq``,
    ``exp_avg_slow``), one more than Adam's. Defaults (the paper's, pytorch-optimizer's):
    ``betas=(0.9, 0.999, 0.9999)``, ``alpha=5.0``, ``t_alpha_beta3=None``, ``eps=1e-8``.
    """

    checks = {"betas": _betas3, "alpha": checks.non_negative, "t_alpha_beta3": checks.optional_positive,
              "eps": checks.positive}
    state_keys = ("exp_avg", "exp_avg_sq", "exp_avg_slow")

    def __init__(self, betas=(0.9, 0.999, 0.9999), alpha: float = 5.0, t_alpha_beta3: float | None = None,
                 eps: float = 1e-8) -> None:
        super().__init__(betas=betas, alpha=alpha, t_alpha_beta3=t_alpha_beta3, eps=eps)

    def init(self, params, hyperparams):
        return {"exp_avg": params.zeros_like(), "exp_avg_sq": params.zeros_like(),
                "exp_avg_slow": params.zeros_like()}

    def coefficients(self, hyperparams, step, state):
        beta1, beta2, _ = hyperparams["betas"]
        alpha, beta3 = alpha_beta3_at(hyperparams, step)
        return {**bias_corrected_coefficients({**hyperparams, "betas": (beta1, beta2)}, step),
                "alpha": alpha, "one_minus_beta3": 1 - beta3}

    def update(self, updates, state, params, hyperparams, step):
        k = self.coefficients(hyperparams, step, state)
        exp_avg = state["exp_avg"].lerp_(updates, k["one_minus_beta1"])
        exp_avg_sq = state["exp_avg_sq"].mul_(k["beta2"]).addcmul_(updates, updates, value=k["one_minus_beta2"])
        exp_avg_slow = state["exp_avg_slow"].lerp_(updates, k["one_minus_beta3"])
        denom = (exp_avg_sq.sqrt() / k["sqrt_bias_correction2"]).add_(k["eps"])
        return (exp_avg / k["bias_correction1"]).add_(exp_avg_slow, alpha=k["alpha"]).div_(denom)

    def elementwise(self, hyperparams):
        code = MOMENTS_CODE + """
        $exp_avg_slow = lerp($exp_avg_slow, u, $one_minus_beta3);
        R0 = $exp_avg_sq;
        SQRTS;
        u = FMA($alpha, $exp_avg_slow, $exp_avg / $bias_correction1) / (R0 / $sqrt_bias_correction2 + $eps);
        """
        return Elementwise(code, ("exp_avg", "exp_avg_sq", "exp_avg_slow"))
