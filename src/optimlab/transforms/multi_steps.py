"""Gradient accumulation: k calls make one step."""

from __future__ import annotations

from .. import checks
from ..transform import Transform
from .wrapping import _Wrapper


class multi_steps(_Wrapper):
    r"""Gradient accumulation (optax's ``MultiSteps``): ``inner`` steps once every
    :math:`k` calls, on the mean of the :math:`k` gradients.

    .. math:: a \leftarrow a + g_t;\qquad t \equiv 0 \pmod k:\quad
              \theta \leftarrow \theta + \mathrm{inner}(a / k),\quad a \leftarrow 0

    The other calls leave the parameters as they are. With mean-reduced losses over
    equal micro-batches this is one step on a :math:`k`-times larger batch. ``inner``
    counts its own steps (:math:`t / k`), so its bias corrections and schedules run per
    applied step. Hyperparameter ``every_k`` (:math:`k`, default 1: the identity);
    buffer ``accumulated_grads``.
    """

    checks = {"every_k": checks.positive_integer}
    own_state_keys = ("accumulated_grads",)

    def __init__(self, inner: Transform, every_k: int = 1) -> None:
        super().__init__(inner, every_k=every_k)

    def init(self, params, hyperparams):
        return {**self.inner.init(params, hyperparams), "accumulated_grads": params.zeros_like()}

    def apply(self, updates, state, params, hyperparams, step):
        k = hyperparams["every_k"]
        accumulated = state["accumulated_grads"].add_(updates)
        if step % k == 0:
            self.inner.apply(accumulated / k, state, params, hyperparams, step // k)
            for tensor in accumulated:
                tensor.zero_()
