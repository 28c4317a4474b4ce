"""Momentum: heavy-ball (with Nesterov's variant) and the exponential moving average."""

from __future__ import annotations

from .. import checks
from ..fused.spec import Elementwise
from ..transform import Transform


class trace(Transform):
    r"""Heavy-ball momentum, torch.optim.SGD's form (Polyak 1964; Sutskever et al. 2013):

    .. math::
        v_1 = u_1, \qquad v_t = \mu v_{t-1} + (1 - d)\,u_t, \qquad
        u \leftarrow v_t \ \text{or, with Nesterov,}\ u_t + \mu v_t .

    Hyperparameters ``momentum`` (:math:`\mu`, default 0: no buffer is kept),
    ``dampening`` (:math:`d`, default 0), ``nesterov`` (default False; needs
    :math:`\mu > 0` and :math:`d = 0`). Followed by ``scale_by_learning_rate`` this is
    ``v = mu*v + g; p = p - lr*v``.
    """

    checks = {
        "momentum": checks.non_negative,
        "dampening": checks.non_negative,
        "nesterov": checks.boolean,
    }
    state_keys = ("momentum_buffer",)
    supports_sparse = True

    def __init__(self, momentum: float = 0.0, dampening: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(momentum=momentum, dampening=dampening, nesterov=nesterov)

    def validate(self, hyperparams):
        super().validate(hyperparams)
        momentum = hyperparams.get("momentum", 0.0)
        dampening = hyperparams.get("dampening", 0.0)
        if hyperparams.get("nesterov", False) and (momentum <= 0 or dampening != 0):
            raise ValueError(
                "nesterov=True requires momentum > 0 and dampening = 0, "
                f"got momentum={momentum!r}, dampening={dampening!r}"
            )

    def coefficients(self, hyperparams, step, state):
        return {"momentum": hyperparams["momentum"], "one_minus_dampening": 1 - hyperparams["dampening"]}

    def update(self, updates, state, params, hyperparams, step):
        momentum = hyperparams["momentum"]
        if momentum == 0:
            return updates
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = updates.clone()
        else:
            k = self.coefficients(hyperparams, step, state)
            state["momentum_buffer"].mul_(momentum).add_(updates, alpha=k["one_minus_dampening"])
        velocity = state["momentum_buffer"]
        if hyperparams["nesterov"]:
            return updates.add(velocity, alpha=momentum)
        return velocity

    def elementwise(self, hyperparams):
        if hyperparams["momentum"] == 0:
            return Elementwise("")
        velocity = "u = FMA($momentum, $momentum_buffer, u);" if hyperparams["nesterov"] else "u = $momentum_buffer;"
        return Elementwise(
            "$momentum_buffer = FMA($one_minus_dampening, u, $momentum_buffer * $momentum);" + velocity,
            buffers=("momentum_buffer",),
        )


class ema(Transform):
    r"""Momentum as an exponential moving average of the updates:

    .. math:: v_0 = 0, \qquad v_t = \beta v_{t-1} + (1 - \beta)\,u_t, \qquad u \leftarrow v_t .

    Unlike `trace`, the first step is damped too (:math:`v_1 = (1-\beta)u_1`), and the
    step size is independent of :math:`\beta` in steady state (an EMA, not a sum).
    Hyperparameter ``momentum`` (:math:`\beta`), default 0.9, in [0, 1).
    This is Adam's first moment without bias correction.
    """

    checks = {"momentum": checks.decay_rate}
    state_keys = ("ema",)

    def __init__(self, momentum: float = 0.9) -> None:
        super().__init__(momentum=momentum)

    def init(self, params, hyperparams):
        return {"ema": params.zeros_like()}

    def coefficients(self, hyperparams, step, state):
        return {"beta": hyperparams["momentum"], "one_minus_beta": 1 - hyperparams["momentum"]}

    def update(self, updates, state, params, hyperparams, step):
        # One pass, torch.optim.Muon's (its momentum buffer's bits).
        return state["ema"].lerp_(updates, self.coefficients(hyperparams, step, state)["one_minus_beta"])

    def elementwise(self, hyperparams):
        return Elementwise("$ema = lerp($ema, u, $one_minus_beta); u = $ema;", buffers=("ema",))
