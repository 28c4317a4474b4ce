"""AdaBelief: Adam whose second moment is the variance of the gradient around its EMA."""

from __future__ import annotations

from .. import checks
from ..fused.spec import Elementwise
from ..transform import Transform
from .adam import bias_corrected_coefficients


class scale_by_belief(Transform):
    r"""AdaBelief (Zhuang et al. 2020, "AdaBelief Optimizer: Adapting Stepsizes by the
    Belief in Observed Gradients", Algorithm 2):

    .. math:: m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
              s_t = \beta_2 s_{t-1} + (1-\beta_2) (g_t - m_t)^2 + \epsilon, \quad
              u \leftarrow \frac{m_t / (1-\beta_1^t)}{\sqrt{s_t / (1-\beta_2^t)} + \epsilon}.

    Adam with :math:`g_t^2` replaced by :math:`(g_t - m_t)^2`: the step is large where the
    gradient follows its moving average (the "belief") and small where it deviates from it.
    :math:`\epsilon` is added to :math:`s_t` too, as in the paper and its authors' code.
    One buffer more than none, as many as Adam's (``exp_avg``, ``exp_avg_var``). Defaults
    (the authors' adabelief-pytorch 0.2 and pytorch-optimizer's): ``betas=(0.9, 0.999)``,
    ``eps=1e-16``.
    """

    checks = {"betas": checks.betas, "eps": checks.positive}
    state_keys = ("exp_avg", "exp_avg_var")

    def __init__(self, betas=(0.9, 0.999), eps: float = 1e-16) -> None:
        super().__init__(betas=betas, eps=eps)

    def init(self, params, hyperparams):
        return {"exp_avg": params.zeros_like(), "exp_avg_var": params.zeros_like()}

    def coefficients(self, hyperparams, step, state):
        return bias_corrected_coefficients(hyperparams, step)

    def update(self, updates, state, params, hyperparams, step):
        k = self.coefficients(hyperparams, step, state)
        exp_avg = state["exp_avg"].lerp_(updates, k["one_minus_beta1"])
        residual = updates - exp_avg
        exp_avg_var = state["exp_avg_var"].mul_(k["beta2"]).addcmul_(residual, residual, value=k["one_minus_beta2"])
        exp_avg_var.add_(k["eps"])
        denom = (exp_avg_var.sqrt() / k["sqrt_bias_correction2"]).add_(k["eps"])
        return (exp_avg / k["bias_correction1"]).div_(denom)

    def elementwise(self, hyperparams):
        code = """
        $exp_avg = lerp($exp_avg, u, $one_minus_beta1);
        T residual = u - $exp_avg;
        $exp_avg_var = FMA($one_minus_beta2 * residual, residual, $exp_avg_var * $beta2) + $eps;
        R0 = $exp_avg_var;
        SQRTS;
        u = ($exp_avg / $bias_correction1) / (R0 / $sqrt_bias_correction2 + $eps);
        """
        return Elementwise(code, ("exp_avg", "exp_avg_var"))
