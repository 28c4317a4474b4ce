"""Adam's bias-corrected moment scaling, and the moment updates its variants share."""

from __future__ import annotations

import math
from collections.abc import Mapping

from .. import checks
from ..fused.spec import Elementwise
from ..tensorlist import TensorList
from ..transform import State, Transform


def update_moments(state: State, updates: TensorList, k: Mapping[str, float]) -> tuple[TensorList, TensorList]:
    r"""Adam's moving averages, in place: :math:`m \leftarrow \beta_1 m + (1-\beta_1) g`,
    :math:`v \leftarrow \beta_2 v + (1-\beta_2) g^2`, with ``k`` holding
    `moment_coefficients`. Returns ``(m, v)``."""
    exp_avg = state["exp_avg"].lerp_(updates, k["one_minus_beta1"])
    exp_avg_sq = state["exp_avg_sq"].mul_(k["beta2"]).addcmul_(updates, updates, value=k["one_minus_beta2"])
    return exp_avg, exp_avg_sq


#: `update_moments` for one element (the fused path), with `moment_coefficients`.
MOMENTS_CODE = """
$exp_avg = lerp($exp_avg, u, $one_minus_beta1);
$exp_avg_sq = FMA($one_minus_beta2 * u, u, $exp_avg_sq * $beta2);
"""


def moment_coefficients(betas: tuple[float, float]) -> dict[str, float]:
    beta1, beta2 = betas
    return {"one_minus_beta1": 1 - beta1, "beta2": beta2, "one_minus_beta2": 1 - beta2}


def bias_corrected_coefficients(hyperparams: Mapping, step: int) -> dict[str, float]:
    """`moment_coefficients`, Adam's bias corrections (the first, and the square root of
    the second) and ``eps``: the per-step numbers of Adam's step."""
    beta1, beta2 = hyperparams["betas"]
    return {
        **moment_coefficients((beta1, beta2)), "bias_correction1": 1 - beta1**step,
        "sqrt_bias_correction2": math.sqrt(1 - beta2**step), "eps": hyperparams["eps"],
    }


def init_moments(params: TensorList) -> State:
    return {"exp_avg": params.zeros_like(), "exp_avg_sq": params.zeros_like()}


class scale_by_adam(Transform):
    r"""Adam (Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization"):

    .. math:: m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
              v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \quad
              u \leftarrow \frac{m_t / (1-\beta_1^t)}{\sqrt{v_t / (1-\beta_2^t)} + \epsilon}.

    With ``amsgrad`` (Reddi, Kale & Kumar 2018, "On the Convergence of Adam and Beyond")
    :math:`v_t` in the denominator is replaced by :math:`\max_{s \le t} v_s`.
    Both moments are bias-corrected. Defaults (torch.optim.Adam's):
    ``betas=(0.9, 0.999)``, ``eps=1e-8``, ``amsgrad=False``.
    """

    checks = {"betas": checks.betas, "eps": checks.positive, "amsgrad": checks.boolean}
    state_keys = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(self, betas=(0.9, 0.999), eps: float = 1e-8, amsgrad: bool = False) -> None:
        super().__init__(betas=betas, eps=eps, amsgrad=amsgrad)

    def init(self, params, hyperparams):
        state = init_moments(params)
        if hyperparams["amsgrad"]:
            state["max_exp_avg_sq"] = params.zeros_like()
        return state

    def coefficients(self, hyperparams, step, state):
        return bias_corrected_coefficients(hyperparams, step)

    def update(self, updates, state, params, hyperparams, step):
        k = self.coefficients(hyperparams, step, state)
        exp_avg, exp_avg_sq = update_moments(state, updates, k)
        if hyperparams["amsgrad"]:
            if "max_exp_avg_sq" not in state:
                state["max_exp_avg_sq"] = params.zeros_like()
            exp_avg_sq = state["max_exp_avg_sq"].maximum_(exp_avg_sq)
        denom = (exp_avg_sq.sqrt() / k["sqrt_bias_correction2"]).add_(k["eps"])
        return (exp_avg / k["bias_correction1"]).div_(denom)

    def elementwise(self, hyperparams):
        if hyperparams["amsgrad"]:
            second = "$max_exp_avg_sq = maximum($max_exp_avg_sq, $exp_avg_sq); R0 = $max_exp_avg_sq;"
            buffers = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
        else:
            second, buffers = "R0 = $exp_avg_sq;", ("exp_avg", "exp_avg_sq")
        code = "SQRTS; u = ($exp_avg / $bias_correction1) / (R0 / $sqrt_bias_correction2 + $eps);"
        return Elementwise(MOMENTS_CODE + second + code, buffers)
