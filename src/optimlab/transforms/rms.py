"""RMSprop's scaling."""

from __future__ import annotations

from .. import checks
from ..fused.spec import Elementwise
from ..transform import Transform


class scale_by_rms(Transform):
    r"""Divide by the root of a moving average of squared gradients (Hinton, Coursera
    lecture 6e, 2012; centered variant: Graves 2013, "Generating Sequences With RNNs"):

    .. math:: v_t = \alpha v_{t-1} + (1-\alpha) g_t^2, \qquad
              u \leftarrow g_t / (\sqrt{v_t - \bar g_t^2} + \epsilon)

    where :math:`\bar g_t = \alpha \bar g_{t-1} + (1-\alpha) g_t` is kept only when
    ``centered`` (otherwise :math:`\bar g = 0`). No bias correction. :math:`\epsilon` guards the division; it is no decay factor.
    Defaults (torch.optim.RMSprop's): ``alpha=0.99``, ``eps=1e-8``, ``centered=False``.
    """

    checks = {"alpha": checks.unit_interval, "eps": checks.positive, "centered": checks.boolean}
    state_keys = ("square_avg", "grad_avg")

    def __init__(self, alpha: float = 0.99, eps: float = 1e-8, centered: bool = False) -> None:
        super().__init__(alpha=alpha, eps=eps, centered=centered)

    def init(self, params, hyperparams):
        state = {"square_avg": params.zeros_like()}
        if hyperparams["centered"]:
            state["grad_avg"] = params.zeros_like()
        return state

    def coefficients(self, hyperparams, step, state):
        return {"alpha": hyperparams["alpha"], "one_minus_alpha": 1 - hyperparams["alpha"], "eps": hyperparams["eps"]}

    def update(self, updates, state, params, hyperparams, step):
        k = self.coefficients(hyperparams, step, state)
        square_avg = state["square_avg"].mul_(k["alpha"]).addcmul_(updates, updates, value=k["one_minus_alpha"])
        if hyperparams["centered"]:
            if "grad_avg" not in state:
                state["grad_avg"] = params.zeros_like()
            grad_avg = state["grad_avg"].lerp_(updates, k["one_minus_alpha"])
            rms = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
        else:
            rms = square_avg.sqrt()
        return updates / rms.add_(k["eps"])

    def elementwise(self, hyperparams):
        code = "$square_avg = FMA($one_minus_alpha * u, u, $square_avg * $alpha);"
        buffers = ("square_avg",)
        if hyperparams["centered"]:
            code += """
            $grad_avg = lerp($grad_avg, u, $one_minus_alpha);
            R0 = FMA(-$grad_avg, $grad_avg, $square_avg);
            """
            buffers += ("grad_avg",)
        else:
            code += "R0 = $square_avg;"
        return Elementwise(code + "SQRTS; u = u / (R0 + $eps);", buffers)
