"""Gradient clipping."""

from __future__ import annotations

from .. import checks
from ..fused.spec import Elementwise
from ..transform import Transform


class clip_by_global_norm(Transform):
    r"""Rescale so the global norm is at most ``max_norm``:
    :math:`u \leftarrow u \cdot \min(1, c / (\lVert u \rVert_2 + 10^{-6}))`.

    The norm is over all tensors updated together (in an optimizer, a param group's
    parameters with the same step count and state: the whole group when every parameter
    gets a gradient at every step), as
    ``torch.nn.utils.clip_grad_norm_`` computes it over the tensors it is given
    (Pascanu, Mikolov & Bengio 2013, "On the difficulty of training RNNs").
    No default for ``max_norm``.
    """

    checks = {"max_norm": checks.positive}

    def __init__(self, max_norm: float) -> None:
        super().__init__(max_norm=max_norm)

    def update(self, updates, state, params, hyperparams, step):
        norm = updates.global_norm()
        scale = (hyperparams["max_norm"] / (norm + 1e-6)).clamp(max=1.0)
        return updates * scale

    def coefficients(self, hyperparams, step, state):
        return {"max_norm": hyperparams["max_norm"]}

    def elementwise(self, hyperparams):
        # torch computes max_norm / x as x.reciprocal() * max_norm, in the norm's dtype.
        return Elementwise("u = u * $scale;", norm=("scale", "min_one(((T)1 / (norm + (T)1e-6)) * (T)$max_norm)"))


class clip_by_value(Transform):
    r"""Clamp each element: :math:`u \leftarrow \operatorname{clip}(u, -c, c)`.

    As ``torch.nn.utils.clip_grad_value_``. No default for ``clip_value``.
    """

    checks = {"clip_value": checks.positive}
    supports_sparse = False

    def __init__(self, clip_value: float) -> None:
        super().__init__(clip_value=clip_value)

    def update(self, updates, state, params, hyperparams, step):
        limit = hyperparams["clip_value"]
        return updates.clamp_min(-limit).clamp_max_(limit)

    def coefficients(self, hyperparams, step, state):
        return {"limit": hyperparams["clip_value"]}

    def elementwise(self, hyperparams):
        return Elementwise("u = u < -$limit ? -$limit : u; u = u > $limit ? $limit : u;")
