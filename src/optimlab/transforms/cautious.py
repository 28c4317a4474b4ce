"""Cautious masking: keep the components of an update that agree in sign with the gradient."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..fused.spec import Elementwise, PerTensor
from ..transform import Part, Transform


class cautious(Transform):
    r"""Cautious ``inner`` (Liang et al. 2024, "Cautious Optimizers: Improving Training with
    One Line of Code", the one line of its Algorithm 1): the update of ``inner``, a
    preconditioner (its output a direction along the gradient, as `scale_by_adam`'s or
    `scale_by_lion`'s), zeroed where its sign disagrees with the gradient it received and
    rescaled per tensor:

    .. math:: \phi = \mathbb 1[u \circ g > 0], \qquad
              u \leftarrow u \circ \phi \cdot \frac{d}{\textstyle\sum_i \phi_i + 1}

    with :math:`d` the tensor's number of elements: the normalization of the authors' code
    (C-Optim) and of pytorch-optimizer's ``apply_cautious``; the paper's line divides by
    ``mask.mean() + eps`` instead (:math:`\sum_i\phi_i + d\,\epsilon`). Wrap the
    preconditioner only, so that the decoupled weight decay is not masked (the paper's C-AdamW):
    ``chain(cautious(scale_by_adam()), add_decayed_weights(wd), scale_by_learning_rate(lr))``.
    No hyperparameters or state of its own: ``inner``'s. On the fused path the mask's count
    is measured in the kernel per tensor (a `PerTensor` reduction); a chain with a second
    one (a trust ratio, in ``inner`` or after it) runs eagerly.
    """

    def __init__(self, inner: Transform) -> None:
        if not isinstance(inner, Transform):
            raise TypeError(f"cautious takes a Transform, got {inner!r}")
        self.inner = inner
        super().__init__(**inner.hyperparams)
        self.state_keys = inner.state_keys

    def validate(self, hyperparams: Mapping[str, Any]) -> None:
        self.inner.validate(hyperparams)

    def init(self, params, hyperparams):
        return self.inner.init(params, hyperparams)

    def update(self, updates, state, params, hyperparams, step):
        inner = self.inner.update(updates, state, params, hyperparams, step)
        masked = []
        for u, g in zip(inner, updates):
            agree = u * g > 0
            agreeing = agree.sum(dtype=torch.float64)
            # numel / (agreeing + 1) in double, as the kernel (a number / tensor is a reciprocal, then a product)
            scale = torch.full_like(agreeing, u.numel()) / (agreeing + 1)
            masked.append(torch.where(agree, u * scale.to(u.dtype), 0))
        return inner.wrap(masked)

    def leaves(self) -> tuple[Part, ...]:
        """``inner``'s parts, then this one: its `elementwise` is the mask alone."""
        return (*self.inner.leaves(), Part(self, ""))

    def elementwise(self, hyperparams):
        return Elementwise("u = $input * u > 0 ? u * $scale : (T)0;", wraps=len(self.inner.leaves()),
                           per_tensor=PerTensor(
                               sums=(("agreeing", "$input * u > 0 ? 1.0 : 0.0"), ("count", "1.0")),
                               scalars=(("scale", "$count / ($agreeing + 1.0)"),),
                           ))

    def __repr__(self) -> str:
        return f"cautious({self.inner!r})"
