"""Different transforms for different parameters (optax's ``multi_transform``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor

from ..transform import Transform, _same


class partition(Transform):
    r"""Route each parameter to one of several transforms by a label:
    ``partition({"muon": muon(), "adamw": adamw()}, label=lambda p: "muon" if p.ndim == 2 else "adamw")``.

    ``label(p)`` names the transform of parameter ``p`` (as optimized: a complex parameter
    is seen as its real view). Each transform keeps its own state, for its own parameters
    only, under its own buffer names. As the parameters' states differ, the optimizer
    steps each label's parameters apart: a transform before the partition in a chain that
    spans parameters (`clip_by_global_norm`) sees one label's at a time.

    Hyperparameters, in the param group as for any chain: the first transform's under
    their own names, so the optimizer looks like it to torch (an lr scheduler sets its
    ``lr``, OneCycleLR cycles its ``momentum`` or ``betas``). A later transform reads the
    same key where it declares the name with the same default (``lr``, ``weight_decay``:
    one scheduler drives all), and its own key ``"label.name"`` otherwise
    (``"adamw.betas"``, ``"adamw.eps"`` beside Muon's ``"eps"``). Any group may set a
    ``"label.name"`` key to give that label its own value (``"adamw.lr"``), which then no
    ``torch.optim.lr_scheduler`` changes: for learning rates that differ by label and
    follow a scheduler, put each label's parameters in their own param group.
    """

    def __init__(self, transforms: Mapping[str, Transform], label: Callable[[Tensor], str]) -> None:
        for name, t in transforms.items():
            if not isinstance(t, Transform):
                raise TypeError(f"partition takes Transform instances, got {name!r}: {t!r}")
        self.transforms = dict(transforms)
        self.label = label
        hyperparams: dict[str, Any] = {}
        for index, (name, t) in enumerate(self.transforms.items()):
            for key, default in t.hyperparams.items():
                if index > 0 and not (key in hyperparams and _same(hyperparams[key], default)):
                    key = f"{name}.{key}"
                hyperparams[key] = default
        self.hyperparams = hyperparams
        self.state_keys = tuple(dict.fromkeys(k for t in self.transforms.values() for k in t.state_keys))
        self.supports_sparse = all(t.supports_sparse for t in self.transforms.values())

    def view(self, hyperparams: Mapping[str, Any], name: str) -> dict[str, Any]:
        """The hyperparameters transform ``name`` reads: the group's, with its own keys."""
        prefix = name + "."
        own = {k[len(prefix):]: v for k, v in hyperparams.items() if isinstance(k, str) and k.startswith(prefix)}
        return {**hyperparams, **own}

    def validate(self, hyperparams):
        for name, t in self.transforms.items():
            t.validate(self.view(hyperparams, name))

    def _labels(self, params) -> dict[str, list[int]]:
        """Each label with the indices of its parameters."""
        indices: dict[str, list[int]] = {}
        for i, p in enumerate(params):
            name = self.label(p)
            if name not in self.transforms:
                raise ValueError(
                    f"label returned {name!r} for a parameter of shape {tuple(p.shape)}; "
                    f"the labels are {', '.join(map(repr, self.transforms))}"
                )
            indices.setdefault(name, []).append(i)
        return indices

    def init(self, params, hyperparams):
        # A buffer exists for the parameters of the labels that keep it: None elsewhere
        # (the optimizer stores no state there).
        state: dict[str, list] = {}
        for name, indices in self._labels(params).items():
            own = self.transforms[name].init(params.wrap([params[i] for i in indices]), self.view(hyperparams, name))
            for key, buffers in own.items():
                column = state.setdefault(key, [None] * len(params))
                for i, buffer in zip(indices, buffers):
                    column[i] = buffer
        return {key: params.wrap(column) for key, column in state.items()}

    def update(self, updates, state, params, hyperparams, step):
        result = [None] * len(updates)
        for indices, own_updates in self._route("update", updates, state, params, hyperparams, step):
            for i, u in zip(indices, own_updates):
                result[i] = u
        return updates.wrap(result)

    def apply(self, updates, state, params, hyperparams, step):
        for _ in self._route("apply", updates, state, params, hyperparams, step):
            pass

    def _route(self, method, updates, state, params, hyperparams, step):
        """Call each label's update or apply on its parameters; yield (indices, result)."""
        for name, indices in self._labels(params).items():
            transform = self.transforms[name]
            pick = lambda tensors: params.wrap([tensors[i] for i in indices])  # noqa: E731
            own = {k: pick(state[k]) for k in transform.state_keys if k in state}
            own_params, own_updates = pick(params), pick(updates)
            view = self.view(hyperparams, name)
            result = getattr(transform, method)(own_updates, own, own_params, view, step)
            for key, buffers in own.items():  # buffers created, or replaced, by the transform
                column = state[key].tensors if key in state else [None] * len(params)
                for i, buffer in zip(indices, buffers):
                    column[i] = buffer
                state[key] = params.wrap(column)
            yield indices, result

    def __repr__(self) -> str:
        parts = ", ".join(f"{name!r}: {t!r}" for name, t in self.transforms.items())
        return f"partition({{{parts}}}, label={self.label!r})"
