"""Gradient transformations and their composition.

A gradient transformation (optax's idea, torch.optim's contract) turns the updates of
one param group into new updates:

    state   = transform.init(params, hyperparams)
    updates = transform.update(updates, state, params, hyperparams, step)

* ``params``, ``updates``: `TensorList` s aligned with each other (updates start as
  the gradients; the optimizer adds the final updates to the parameters). Updates are
  valid for the step only (the gradients are overwritten by the next backward, and the
  fused path and some transforms hand on scratch they reuse): a transform that keeps
  them copies them.
* ``state``: ``dict[str, TensorList]`` of per-parameter buffers that ``update`` changes in
  place (or Python numbers, which a checkpoint keeps exactly: PSGD-Kron's seeds). ``update`` may add a buffer it needs lazily (say, a momentum buffer once
  momentum becomes non-zero); it never changes its input updates in place.
* ``hyperparams``: the param group (a mapping), read at every step, so a scheduler or
  the user can change any hyperparameter between steps.
* ``step``: how many updates this state has had, this one included (1 on the first).

Each transform declares the hyperparameters it reads, with defaults and a validity
check, and the names of its state buffers. `chain` composes transforms; it is itself a
transform, so chains nest.

An elementwise transform also gives its per-step numbers once, in `Transform.coefficients`
(bias corrections, the negated learning rate, ...), which both its `update` and its fused
form read, and its update as C statements over one element, in `Transform.elementwise`
(an `optimlab.fused.Elementwise`): the fused path compiles a chain of such transforms into
one kernel. docs/algorithms.md ("Adding an optimizer") has the recipe.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from .tensorlist import TensorList

if TYPE_CHECKING:
    from .fused.spec import Elementwise

State = dict[str, TensorList]
Check = Callable[[str, Any], None]


class Transform:
    """Base class of gradient transformations.

    Subclasses set ``hyperparams`` (name -> default) in ``__init__`` through
    `Transform.__init__`, ``checks`` (name -> check function) and ``state_keys`` as class
    attributes, and implement `update` (and `init` if they keep state). An elementwise
    transform also implements `coefficients` and `elementwise` (the fused path).
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
        updates: TensorList,
        state: State,
        params: TensorList,
        hyperparams: Mapping[str, Any],
        step: int,
    ) -> None:
        """Update ``params`` in place by the transformed ``updates`` (`update`'s arguments).

        ``params += update(...)``; a transform that ends a chain may fuse the addition
        into its own last operation (`scale_by_learning_rate` does, as torch.optim does).
        """
        params.add_(self.update(updates, state, params, hyperparams, step))

    def coefficients(self, hyperparams: Mapping[str, Any], step: int, state: State) -> dict[str, float]:
        """The per-step numbers of `update` (``{name: value}``), computed in one place for
        both paths: `update` reads them, and so does the fused kernel (as ``$name``).

        Called exactly once per step by whichever path runs, so it may advance a state
        that is not elementwise (NAdam's product of momenta)."""
        return {}

    def tensor_coefficients(self, hyperparams: Mapping[str, Any], params: TensorList) -> dict[str, list[float]]:
        """The numbers of `update` with one value per tensor (``{name: [value per
        tensor of params]}``: Muon's scale by a matrix's shape), for both paths, as
        `coefficients`: the fused kernel reads them as ``$name``
        (`~optimlab.fused.spec.Elementwise.tensor_coefficients`)."""
        return {}

    def absorb(self, scalars: Mapping[str, float], state: State, hyperparams: Mapping[str, Any], step: int) -> None:
        """Keep the bucket scalars (`~optimlab.fused.spec.BucketSums`) the fused kernel
        computed in a step (``{name: value}``): the state the transform keeps outside its
        buffers (Prodigy's distance estimate). Its eager path calls it too."""

    def elementwise(self, hyperparams: Mapping[str, Any]) -> Elementwise | None:
        """The update as C statements over one element, for the fused path; None where it
        is not elementwise (or not for these ``hyperparams``): the chain then runs eagerly.
        See `optimlab.fused.spec`."""
        return None

    def leaves(self) -> tuple[Part, ...]:
        """The transforms this one runs, flattened, with their state prefixes: itself."""
        return (Part(self, ""),)

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
        #: The parts, each with the prefix of its state keys in the chain's state.
        self.parts = tuple(
            Part(t, f"{i}." if any(key_counts[k] > 1 for k in t.state_keys) else "")
            for i, t in enumerate(transforms)
        )
        self.state_keys = tuple(part.prefix + key for part in self.parts for key in part.transform.state_keys)
        self.supports_sparse = all(t.supports_sparse for t in transforms)
        self._leaves = tuple(leaf for part in self.parts for leaf in part.leaves())

    def validate(self, hyperparams: Mapping[str, Any]) -> None:
        for t in self.transforms:
            t.validate(hyperparams)

    def leaves(self) -> tuple[Part, ...]:
        """The non-chain transforms of this chain and of the chains it nests, in the order
        they run, each with the prefix of its keys in this chain's state."""
        return self._leaves

    def init(self, params: TensorList, hyperparams: Mapping[str, Any]) -> State:
        state: State = {}
        for part in self.parts:
            part.store(state, part.transform.init(params, hyperparams))
        return state

    def update(self, updates, state, params, hyperparams, step):
        for part in self.parts:
            updates = part.run("update", updates, state, params, hyperparams, step)
        return updates

    def apply(self, updates, state, params, hyperparams, step):
        if not self.parts:
            return
        for part in self.parts[:-1]:
            updates = part.run("update", updates, state, params, hyperparams, step)
        self.parts[-1].run("apply", updates, state, params, hyperparams, step)

    def __repr__(self) -> str:
        return "chain(" + ", ".join(map(repr, self.transforms)) + ")"


class Part(NamedTuple):
    """A transform inside a chain, and the prefix of its state keys in the chain's state
    (``"2."`` where two parts use the same key, else ``""``)."""

    transform: Transform
    prefix: str

    def state(self, state: State) -> State:
        """The part's own view of the chain's ``state``: its keys, without the prefix."""
        prefix = self.prefix
        return {k: state[prefix + k] for k in self.transform.state_keys if prefix + k in state}

    def store(self, state: State, own: State) -> None:
        """Put the part's ``own`` buffers (created or replaced) back into the chain's ``state``."""
        for key, buffers in own.items():
            state[self.prefix + key] = buffers

    def leaves(self) -> tuple[Part, ...]:
        """The transform's leaves (`Transform.leaves`), with their prefixes in the chain's state."""
        return tuple(Part(leaf.transform, self.prefix + leaf.prefix) for leaf in self.transform.leaves())

    def run(self, method: str, updates, state: State, params, hyperparams, step):
        """The part's ``update`` or ``apply`` on its own view of the chain's ``state``."""
        own = self.state(state)
        result = getattr(self.transform, method)(updates, own, params, hyperparams, step)
        self.store(state, own)
        return result


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # e.g. tensors: compare by identity
        return a is b
