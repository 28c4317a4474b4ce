"""MARS: Adam on a variance-reduced gradient, clipped per tensor."""

from __future__ import annotations

from .. import checks
from ..fused.spec import Elementwise, PerTensor
from ..transform import Transform
from .adam import bias_corrected_coefficients


#: c_t of one element, in the parameter's precision (as the eager path computes it).
CORRECTED = "(u - $last_grad) * $correction + u"


class scale_by_mars(Transform):
    r"""MARS-AdamW, its approximate form (Yuan et al. 2024, "MARS: Unleashing the Power of
    Variance Reduction for Training Large Models", Algorithms 1 and 2, with
    :math:`\nabla f(x_{t-1}, \xi_t) \approx g_{t-1}`, the gradient of the previous step):

    .. math:: c_t = g_t + \gamma \frac{\beta_1}{1-\beta_1} (g_t - g_{t-1}), \quad
              c_t \leftarrow \frac{c_t}{\lVert c_t\rVert_2} \text{ where } \lVert c_t\rVert_2 > 1
              \text{ (per tensor)},

    .. math:: m_t = \beta_1 m_{t-1} + (1-\beta_1) c_t, \quad
              v_t = \beta_2 v_{t-1} + (1-\beta_2) c_t^2, \quad
              u \leftarrow \frac{m_t / (1-\beta_1^t)}{\sqrt{v_t / (1-\beta_2^t)} + \epsilon},

    with :math:`g_0 = 0` (the authors' code). The correction term is a STORM-like
    estimate of the gradient's change, scaled by :math:`\gamma` (``gamma``); clipping
    :math:`c_t` to norm 1 keeps the correction from blowing up. Three buffers
    (``exp_avg``, ``exp_avg_sq``, ``last_grad``), one more than Adam's. On the fused path
    each tensor's :math:`\lVert c_t\rVert_2` is measured in the kernel (in double).
    Defaults (the paper's, the authors' code's and pytorch-optimizer's): ``betas=(0.95, 0.99)``,
    ``gamma=0.025``, ``eps=1e-8``.
    """

    checks = {"betas": checks.betas, "gamma": checks.non_negative, "eps": checks.positive}
    state_keys = ("exp_avg", "exp_avg_sq", "last_grad")

    def __init__(self, betas=(0.95, 0.99), gamma: float = 0.025, eps: float = 1e-8) -> None:
        super().__init__(betas=betas, gamma=gamma, eps=eps)

    def init(self, params, hyperparams):
        return {"exp_avg": params.zeros_like(), "exp_avg_sq": params.zeros_like(),
                "last_grad": params.zeros_like()}

    def coefficients(self, hyperparams, step, state):
        beta1 = hyperparams["betas"][0]
        return {**bias_corrected_coefficients(hyperparams, step),
                "correction": hyperparams["gamma"] * beta1 / (1 - beta1)}

    def update(self, updates, state, params, hyperparams, step):
        k = self.coefficients(hyperparams, step, state)
        corrected = (updates - state["last_grad"]).mul_(k["correction"]).add_(updates)
        corrected = corrected.div_([norm.clamp_min(1.0) for norm in corrected.norms()])
        state["last_grad"].copy_(updates)
        exp_avg = state["exp_avg"].lerp_(corrected, k["one_minus_beta1"])
        exp_avg_sq = state["exp_avg_sq"].mul_(k["beta2"]).addcmul_(corrected, corrected,
                                                                     value=k["one_minus_beta2"])
        denom = (exp_avg_sq.sqrt() / k["sqrt_bias_correction2"]).add_(k["eps"])
        return (exp_avg / k["bias_correction1"]).div_(denom)

    def elementwise(self, hyperparams):
        code = f"""
        T c = ({CORRECTED}) / maximum($c_norm, (T)1);
        $last_grad = u;
        $exp_avg = lerp($exp_avg, c, $one_minus_beta1);
        $exp_avg_sq = FMA($one_minus_beta2 * c, c, $exp_avg_sq * $beta2);
        R0 = $exp_avg_sq;
        SQRTS;
        u = ($exp_avg / $bias_correction1) / (R0 / $sqrt_bias_correction2 + $eps);
        """
        return Elementwise(code, ("exp_avg", "exp_avg_sq", "last_grad"), per_tensor=PerTensor(
            sums=(("c_squares", f"(double)({CORRECTED}) * (double)({CORRECTED})"),),
            scalars=(("c_norm", "sqrt($c_squares)"),),
        ))
