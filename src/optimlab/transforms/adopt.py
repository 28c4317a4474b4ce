"""ADOPT: Adam's moments with the gradient normalized by the previous second moment."""

from __future__ import annotations

import math
from typing import Any

from .. import checks
from ..fused.spec import Elementwise
from ..transform import Transform


def fourth_root(t: int) -> float:
    r"""ADOPT's clipping bound :math:`c_t = t^{1/4}` (the paper's and its authors' default)."""
    return t**0.25


def _clip_lambda(name: str, value: Any) -> None:
    if value is not None and not callable(value):
        raise ValueError(f"{name} must be None or a callable from the step to a bound, got {value!r}")


class scale_by_adopt(Transform):
    r"""ADOPT (Taniguchi et al. 2024, "ADOPT: Modified Adam Can Converge with Any
    :math:`\beta_2` with the Optimal Rate", Algorithm 2, the clipped form):

    .. math:: v_0 = g_0^2, \quad
              m_t = \beta_1 m_{t-1} + (1-\beta_1)\,
                    \operatorname{clip}\!\Big(\frac{g_t}{\max(\sqrt{v_{t-1}}, \epsilon)}, c_t\Big), \quad
              u \leftarrow m_t, \quad
              v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,

    with :math:`\operatorname{clip}(x, c) = \min(\max(x, -c), c)`. The gradient is
    normalized by the second moment of the steps *before* it, so the normalization is
    independent of the current gradient (the fix that makes Adam converge for any
    :math:`\beta_2`), and the momentum is taken after the normalization. The first step
    only sets :math:`v_0` (the update is 0); the paper's :math:`t` is the step minus one.
    No bias correction. ``clip_lambda(t)`` gives :math:`c_t` (None: no clipping).
    Defaults (the paper's, the authors' code's and pytorch-optimizer's):
    ``betas=(0.9, 0.9999)``, ``eps=1e-6``, ``clip_lambda=fourth_root`` (:math:`t^{1/4}`).
    """

    checks = {"betas": checks.betas, "eps": checks.positive, "clip_lambda": _clip_lambda}
    state_keys = ("exp_avg", "exp_avg_sq")

    def __init__(self, betas=(0.9, 0.9999), eps: float = 1e-6, clip_lambda=fourth_root) -> None:
        super().__init__(betas=betas, eps=eps, clip_lambda=clip_lambda)

    def init(self, params, hyperparams):
        return {"exp_avg": params.zeros_like(), "exp_avg_sq": params.zeros_like()}

    def coefficients(self, hyperparams, step, state):
        beta1, beta2 = hyperparams["betas"]
        clip_lambda = hyperparams["clip_lambda"]
        first = step == 1
        return {
            "first": float(first), "one_minus_beta1": 1 - beta1, "beta2": beta2, "one_minus_beta2": 1 - beta2,
            "eps": hyperparams["eps"],
            "clip": math.inf if first or clip_lambda is None else float(clip_lambda(step - 1)),
        }

    def update(self, updates, state, params, hyperparams, step):
        k = self.coefficients(hyperparams, step, state)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        if k["first"]:
            exp_avg_sq.addcmul_(updates, updates)
            return updates.zeros_like()
        normed = updates / exp_avg_sq.sqrt().clamp_min_(k["eps"])
        if hyperparams["clip_lambda"] is not None:
            normed.clamp_min_(-k["clip"]).clamp_max_(k["clip"])
        exp_avg.lerp_(normed, k["one_minus_beta1"])
        exp_avg_sq.mul_(k["beta2"]).addcmul_(updates, updates, value=k["one_minus_beta2"])
        return exp_avg

    def elementwise(self, hyperparams):
        # One kernel for every step: on the first, "$first" keeps m and sets v = g^2, u = 0.
        clip = ("normed = normed < -$clip ? -$clip : normed; normed = normed > $clip ? $clip : normed;"
                if hyperparams["clip_lambda"] is not None else "")
        code = f"""
        R0 = $exp_avg_sq;
        SQRTS;
        T normed = u / maximum(R0, $eps);
        {clip}
        $exp_avg = $first != 0 ? $exp_avg : lerp($exp_avg, normed, $one_minus_beta1);
        $exp_avg_sq = $first != 0 ? FMA(u, u, $exp_avg_sq) : FMA($one_minus_beta2 * u, u, $exp_avg_sq * $beta2);
        u = $first != 0 ? (T)0 : $exp_avg;
        """
        return Elementwise(code, ("exp_avg", "exp_avg_sq"))
