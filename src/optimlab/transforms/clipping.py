"""Gradient clipping."""

from __future__ import annotations

import warnings

import torch.distributed as dist

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

    Where each rank steps a part of the model (``ZeroRedundancyOptimizer``, any sharded
    optimizer), ``sharded=True`` makes the norm the whole model's: the squared norms are
    summed over ``process_group`` (torch.distributed's default group if None) by an
    all-reduce, so every rank must step every group at once (on the eager paths).
    ``sharded=False`` says each rank steps the whole model (DDP). Left None under
    torch.distributed with several ranks, it cannot know which and warns once.
    """

    checks = {"max_norm": checks.positive}

    def __init__(self, max_norm: float, *, sharded: bool | None = None, process_group=None) -> None:
        super().__init__(max_norm=max_norm)
        if sharded not in (None, True, False):
            raise ValueError(f"sharded must be None, True or False, got {sharded!r}")
        if process_group is not None and not sharded:
            raise ValueError(f"process_group is for sharded=True, got sharded={sharded!r}")
        self.sharded, self.process_group = sharded, process_group
        self._warned = False

    def update(self, updates, state, params, hyperparams, step):
        norm = updates.global_norm()
        if self.sharded:
            squared = norm.square()
            dist.all_reduce(squared, group=self.process_group)
            norm = squared.sqrt()
        else:
            self._warn_if_unknown()
        scale = (hyperparams["max_norm"] / (norm + 1e-6)).clamp(max=1.0)
        return updates * scale

    def coefficients(self, hyperparams, step, state):
        return {"max_norm": hyperparams["max_norm"]}

    def _warn_if_unknown(self) -> None:
        if self.sharded is None and not self._warned and dist.is_available() and dist.is_initialized() \
                and dist.get_world_size() > 1:
            self._warned = True
            warnings.warn(
                f"clip_by_global_norm: torch.distributed runs {dist.get_world_size()} ranks and the norm is of "
                "this rank's parameters only; if each rank steps a part of the model (ZeroRedundancyOptimizer), "
                "pass sharded=True for the whole model's norm, or sharded=False if each steps all of it (DDP)",
                stacklevel=3,
            )

    def elementwise(self, hyperparams):
        if self.sharded:  # the kernel's norm is this rank's: the all-reduce runs eagerly
            return None
        self._warn_if_unknown()
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
