"""The shared shape of transforms that run other transforms (`lookahead`, `multi_steps`,
`apply_if_finite`, `switch`): their hyperparameters, checks and state keys are their inner
transforms' plus their own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..transform import Transform


class _InPlace(Transform):
    """A transform defined by its `apply`, which moves the parameters itself."""

    def update(self, updates, state, params, hyperparams, step):
        # The step as an update: apply it to a copy of the parameters and take the difference.
        moved = params.clone()
        self.apply(updates, state, moved, hyperparams, step)
        return moved.sub_(params)


class _Wrapper(_InPlace):
    """A transform around ``inner``; subclasses add their ``own`` hyperparameters and
    ``own_state_keys`` and implement `apply`."""

    own_state_keys: tuple[str, ...] = ()

    def __init__(self, inner: Transform, **own: Any) -> None:
        if not isinstance(inner, Transform):
            raise TypeError(f"{type(self).__name__} takes a Transform, got {inner!r}")
        self.inner = inner
        clash = sorted(set(own) & set(inner.hyperparams))
        if clash:
            raise ValueError(f"{type(self).__name__}'s hyperparameter {clash[0]!r} is also the inner chain's")
        super().__init__(**inner.hyperparams, **own)
        self.state_keys = inner.state_keys + self.own_state_keys
        self.supports_sparse = False

    def validate(self, hyperparams: Mapping[str, Any]) -> None:
        super().validate(hyperparams)
        self.inner.validate(hyperparams)
