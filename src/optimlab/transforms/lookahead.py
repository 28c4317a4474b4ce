"""Lookahead: slow weights that follow the fast ones every k steps."""

from __future__ import annotations

from .. import checks
from ..fused.spec import Elementwise
from ..transform import Transform
from .wrapping import _Wrapper


class lookahead(_Wrapper):
    r"""Lookahead (Zhang, Lucas, Hinton & Ba 2019, "Lookahead Optimizer: k steps forward,
    1 step back"), around any transform ``inner``.

    The fast weights :math:`\theta` take ``inner``'s steps; the slow weights :math:`\phi`
    (:math:`\phi_0 = \theta_0`, buffer ``slow_params``) move every :math:`k` steps:

    .. math:: t \equiv 0 \pmod k:\quad \phi \leftarrow \phi + \alpha(\theta - \phi),
              \qquad \theta \leftarrow \phi

    Hyperparameters ``lookahead_k`` (:math:`k`, default 5) and ``lookahead_alpha``
    (:math:`\alpha \in [0, 1]`, default 0.5), the names and defaults of pytorch-optimizer's
    ``Lookahead`` (its ``pullback_momentum='none'``: the inner state is kept). The inner
    transform sees every step, numbered as without Lookahead.
    """

    checks = {"lookahead_k": checks.positive_integer, "lookahead_alpha": checks.unit_interval}
    own_state_keys = ("slow_params",)

    def __init__(self, inner: Transform, k: int = 5, alpha: float = 0.5) -> None:
        super().__init__(inner, lookahead_k=k, lookahead_alpha=alpha)

    def init(self, params, hyperparams):
        return {**self.inner.init(params, hyperparams), "slow_params": params.clone()}

    fuses_after_inner = True

    def coefficients(self, hyperparams, step, state):
        return {"sync": float(step % hyperparams["lookahead_k"] == 0), "alpha": hyperparams["lookahead_alpha"]}

    def apply(self, updates, state, params, hyperparams, step):
        self.inner.apply(updates, state, params, hyperparams, step)
        k = self.coefficients(hyperparams, step, state)
        if k["sync"]:
            slow = state["slow_params"]
            slow.lerp_(params, k["alpha"])
            params.copy_(slow)

    def elementwise(self, hyperparams):
        # After the inner chain's step: a select, not a branch, so that the loop vectorizes.
        return Elementwise("T pulled = lerp($slow_params, p, $alpha); $slow_params = $sync != (T)0 ? pulled : $slow_params;"
                           " p = $sync != (T)0 ? pulled : p;", buffers=("slow_params",), after_apply=True)
