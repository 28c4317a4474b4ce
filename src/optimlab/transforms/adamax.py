"""AdaMax: Adam with the infinity norm."""

from __future__ import annotations

from .. import checks
from ..fused.spec import Elementwise
from ..transform import Transform


class scale_by_adamax(Transform):
    r"""AdaMax (Kingma & Ba 2015, section 7.1):

    .. math:: m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
              u_t = \max(\beta_2 u_{t-1}, |g_t| + \epsilon), \quad
              u \leftarrow \frac{m_t}{(1-\beta_1^t)\, u_t}.

    The infinity-norm moment needs no bias correction. :math:`\epsilon` (added to
    :math:`|g|`, as torch.optim does) only guards a zero denominator. Defaults (torch.optim.Adamax's):
    ``betas=(0.9, 0.999)``, ``eps=1e-8``; the alias's ``lr`` is 2e-3.
    """

    checks = {"betas": checks.betas, "eps": checks.positive}
    state_keys = ("exp_avg", "exp_inf")

    def __init__(self, betas=(0.9, 0.999), eps: float = 1e-8) -> None:
        super().__init__(betas=betas, eps=eps)

    def init(self, params, hyperparams):
        return {"exp_avg": params.zeros_like(), "exp_inf": params.zeros_like()}

    def coefficients(self, hyperparams, step, state):
        beta1, beta2 = hyperparams["betas"]
        return {"one_minus_beta1": 1 - beta1, "beta2": beta2, "eps": hyperparams["eps"],
                "bias_correction1": 1 - beta1**step}

    def update(self, updates, state, params, hyperparams, step):
        k = self.coefficients(hyperparams, step, state)
        exp_avg = state["exp_avg"].lerp_(updates, k["one_minus_beta1"])
        exp_inf = state["exp_inf"].mul_(k["beta2"]).maximum_(updates.abs().add_(k["eps"]))
        return (exp_avg / k["bias_correction1"]).div_(exp_inf)

    def elementwise(self, hyperparams):
        code = """
        $exp_avg = lerp($exp_avg, u, $one_minus_beta1);
        $exp_inf = maximum($exp_inf * $beta2, ABS(u) + $eps);
        u = ($exp_avg / $bias_correction1) / $exp_inf;
        """
        return Elementwise(code, ("exp_avg", "exp_inf"))
