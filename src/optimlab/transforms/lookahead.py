"""Lookahead: slow weights that follow the fast ones every k steps."""

from __future__ import annotations

from .. import checks
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

    def apply(self, updates, state, params, hyperparams, step):
        self.inner.apply(updates, state, params, hyperparams, step)
        if step % hyperparams["lookahead_k"] == 0:
            slow = state["slow_params"]
            slow.lerp_(params, hyperparams["lookahead_alpha"])
            params.copy_(slow)
