"""Gradient transformations and their composition.

A gradient transformation (optax's idea, torch.optim's contract) turns the updates of
one param group into new updates:

    state   = transform.init(params, hyperparams)
    updates = transform.update(updates, state, params, hyperparams, step)

* ``params``, ``updates``: `TensorList` s aligned with each other (updates start as
  the gradients; the optimizer adds the final updates to the parameters).
* ``state``: ``dict[str, TensorList]`` of per-parameter buffers that ``update`` changes in
  place. ``update`` may add a buffer it needs lazily (say, a momentum buffer once
  momentum becomes non-zero); it never changes its input updates in place.
* ``hyperparams``: the param group (a mapping), read at every step, so a scheduler or
  the user can change any hyperparameter between steps.
* ``step``: how many updates this state has had, this one included (1 on the first).

Each transform declares the hyperparameters it reads, with defaults and a validity
check, and the names of its state buffers. `chain` composes transforms; it is itself a
transform, so chains nest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .tensorlist import TensorList

State = dict[str, TensorList]
Check = Callable[[str, Any], None]


class Transform:
    """Base class of gradient transformations.

    Subclasses set ``hyperparams`` (name -> default) in ``__init__`` through
    `Transform.__init__`, ``checks`` (name -> check function) and ``state_keys`` as class
    attributes, and implement `update` (and `init` if they keep state).
    """

    checks: Mapping[str, Check] = {}
    state_keys: tuple[str, ...] = ()
    supports_sparse: bool = False

    def __init__(self, **hyperparams: Any) -> None:
        self.hyperparams: dict[str, Any] = dict(hyperparams)
        self.validate(self.hyperparams)

    def validate(self, hyperparams: Mapping[str, Any]) -> None:
        """Raise ValueError naming the first invalid hyperparameter and its value."""
        for name, check in self.checks.items():
            if name in hyperparams:
                check(name, hyperparams[name])

    def init(self, params: TensorList, hyperparams: Mapping[str, Any]) -> State:
        return {}

    def update(
        self,
        updates: TensorList,
        state: State,
        params: TensorList,
        hyperparams: Mapping[str, Any],
        step: int,
    ) -> TensorList:
        raise NotImplementedError

    def apply(
        self,
        params: TensorList,
        updates: TensorList,
        state: State,
        hyperparams: Mapping[str, Any],
        step: int,
    ) -> None:
        """Update ``params`` in place by the transformed ``updates``.

        ``params += update(...)``; a transform that ends a chain may fuse the addition
        into its own last operation (`scale_by_learning_rate` does, as torch.optim does).
        """
        params.add_(self.update(updates, state, params, hyperparams, step))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparams.items())
        return f"{type(self).__name__}({args})"


class chain(Transform):
    """Apply transforms one after the other: ``chain(a, b)(g) = b(a(g))``.

    Hyperparameters of all parts are merged into one namespace (a param group); two parts
    may read the same name only if they agree on its default. State buffers keep their
    names unless two parts use the same name, in which case they are prefixed by the
    part's position (``"2.momentum_buffer"``).
    """

    def __init__(self, *transforms: Transform) -> None:
        for t in transforms:
            if not isinstance(t, Transform):
                raise TypeError(f"chain takes Transform instances, got {t!r}")
        self.transforms = transforms
        hyperparams: dict[str, Any] = {}
        for t in transforms:
            for name, default in t.hyperparams.items():
                if name in hyperparams and not _same(hyperparams[name], default):
                    raise ValueError(
                        f"hyperparameter {name!r} has two defaults in one chain: "
                        f"{hyperparams[name]!r} and {default!r} ({t!r})"
                    )
                hyperparams[name] = default
        self.hyperparams = hyperparams
        key_counts: dict[str, int] = {}
        for t in transforms:
            for key in t.state_keys:
                key_counts[key] = key_counts.get(key, 0) + 1
        self._prefixes = [
            f"{i}." if any(key_counts[k] > 1 for k in t.state_keys) else ""
            for i, t in enumerate(transforms)
        ]
        self.state_keys = tuple(
            prefix + key for prefix, t in zip(self._prefixes, transforms) for key in t.state_keys
        )
        self.supports_sparse = all(t.supports_sparse for t in transforms)

    def validate(self, hyperparams: Mapping[str, Any]) -> None:
        for t in self.transforms:
            t.validate(hyperparams)

    def init(self, params: TensorList, hyperparams: Mapping[str, Any]) -> State:
        state: State = {}
        for prefix, t in zip(self._prefixes, self.transforms):
            for key, buffers in t.init(params, hyperparams).items():
                state[prefix + key] = buffers
        return state

    def update(self, updates, state, params, hyperparams, step):
        for index in range(len(self.transforms)):
            updates = self._run(index, "update", updates, state, params, hyperparams, step)
        return updates

    def apply(self, params, updates, state, hyperparams, step):
        if not self.transforms:
            return
        for index in range(len(self.transforms) - 1):
            updates = self._run(index, "update", updates, state, params, hyperparams, step)
        self._run(len(self.transforms) - 1, "apply", updates, state, params, hyperparams, step)

    def _run(self, index, method, updates, state, params, hyperparams, step):
        """Call part ``index``'s update or apply with its own view of the state."""
        transform, prefix = self.transforms[index], self._prefixes[index]
        own = {k: state[prefix + k] for k in transform.state_keys if prefix + k in state}
        if method == "update":
            result = transform.update(updates, own, params, hyperparams, step)
        else:
            result = transform.apply(params, updates, own, hyperparams, step)
        for key, buffers in own.items():
            state[prefix + key] = buffers
        return result

    def __repr__(self) -> str:
        return "chain(" + ", ".join(map(repr, self.transforms)) + ")"


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # e.g. tensors: compare by identity
        return a is b
