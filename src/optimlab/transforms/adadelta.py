"""Adadelta's unit-corrected scaling."""

from __future__ import annotations

from .. import checks
from ..fused.spec import Elementwise
from ..transform import Transform


class scale_by_adadelta(Transform):
    r"""Adadelta (Zeiler 2012, "ADADELTA: An Adaptive Learning Rate Method"):

    .. math:: E[g^2]_t = \rho E[g^2]_{t-1} + (1-\rho) g_t^2, \qquad
              \Delta_t = \frac{\sqrt{E[\Delta^2]_{t-1} + \epsilon}}{\sqrt{E[g^2]_t + \epsilon}}\, g_t,
              \qquad E[\Delta^2]_t = \rho E[\Delta^2]_{t-1} + (1-\rho)\Delta_t^2,

    and :math:`u \leftarrow \Delta_t`. The ratio of RMS values gives the update the units
    of the parameters, so the paper needs no learning rate (torch's ``lr=1.0`` default
    keeps it so).
    Defaults (torch.optim.Adadelta's): ``rho=0.9``, ``eps=1e-6``.
    """

    checks = {"rho": checks.unit_interval, "eps": checks.positive}
    state_keys = ("square_avg", "acc_delta")

    def __init__(self, rho: float = 0.9, eps: float = 1e-6) -> None:
        super().__init__(rho=rho, eps=eps)

    def init(self, params, hyperparams):
        return {"square_avg": params.zeros_like(), "acc_delta": params.zeros_like()}

    def coefficients(self, hyperparams, step, state):
        return {"rho": hyperparams["rho"], "one_minus_rho": 1 - hyperparams["rho"], "eps": hyperparams["eps"]}

    def update(self, updates, state, params, hyperparams, step):
        k = self.coefficients(hyperparams, step, state)
        rho, eps = k["rho"], k["eps"]
        square_avg = state["square_avg"].mul_(rho).addcmul_(updates, updates, value=k["one_minus_rho"])
        rms_grad = square_avg.add(eps).sqrt_()
        delta = state["acc_delta"].add(eps).sqrt_().div_(rms_grad).mul_(updates)
        state["acc_delta"].mul_(rho).addcmul_(delta, delta, value=k["one_minus_rho"])
        return delta

    def elementwise(self, hyperparams):
        code = """
        $square_avg = FMA($one_minus_rho * u, u, $square_avg * $rho);
        R0 = $acc_delta + $eps;
        R1 = $square_avg + $eps;
        SQRTS;
        T delta = R0 / R1 * u;
        $acc_delta = FMA($one_minus_rho * delta, delta, $acc_delta * $rho);
        u = delta;
        """
        return Elementwise(code, ("square_avg", "acc_delta"))
