"""What the lab compares: candidates, each a label, a factory and a search space.

A catalog name becomes the candidate `from_catalog(name)`; a user's own configuration is a
`Candidate` built by hand (see `candidates`). ``"prodigy (untuned)"`` (`untuned_label`) is the
catalog optimizer with an empty search space: the self-tuning track, run at its defaults with
no search (docs/lab.md, "The self-tuning track").
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

import optimlab
from optimlab.catalog import CATALOG, Hyperparameter

#: Options the lab sets beside the tuned ones, where a default would measure the CPU rather
#: than the method. Muon's Newton-Schulz products in bfloat16 (torch's default, for GPU
#: tensor cores) run ~27x slower than in float32 on a CPU without bfloat16 matrix units
#: (mlp_mnist1d: 32.5 ms a step against 1.2 ms), which would decide its time to target.
FIXED_OPTIONS: dict[str, dict[str, Any]] = {"muon": {"ns_dtype": torch.float32}}

#: What an untuned candidate's label adds to the catalog name.
UNTUNED = " (untuned)"


@dataclass(frozen=True)
class Candidate:
    """One optimizer configuration the lab tunes: ``factory(params, **hparams)`` with the
    hyperparameters of ``space`` drawn by the sweep. ``label`` names it in the store and report;
    ``full_batch`` steps it on the whole training set instead of minibatches."""

    label: str
    factory: Callable[..., torch.optim.Optimizer]
    space: tuple[Hyperparameter, ...]
    full_batch: bool = False

    def make(self, params, hparams: Mapping[str, float]) -> torch.optim.Optimizer:
        return self.factory(params, **hparams)

    @property
    def untuned(self) -> bool:
        """Nothing to search: the sweep runs it at its defaults, with no tuning runs."""
        return not self.space


def _create_for_lab(name: str, params, **hparams) -> torch.optim.Optimizer:
    return optimlab.create(name, params, **{**FIXED_OPTIONS.get(name, {}), **hparams})


def untuned_label(name: str) -> str:
    """The label of catalog optimizer ``name`` run at its defaults: ``"prodigy (untuned)"``."""
    return f"{name.lower()}{UNTUNED}"


def catalog_name(label: str) -> str | None:
    """The catalog name a label stands for (``"prodigy"`` for ``"prodigy (untuned)"``), or None."""
    key = label.lower()
    key = key[: -len(UNTUNED)] if key.endswith(UNTUNED) else key
    return key if key in CATALOG else None


def from_catalog(name: str) -> Candidate:
    """The catalog optimizer ``name`` with its search space and the lab's `FIXED_OPTIONS`;
    ``untuned_label(name)``: the same with no search space (its defaults)."""
    key = catalog_name(name)
    if key is None:
        raise ValueError(unknown_name("optimizer", name, CATALOG))
    entry = CATALOG[key]
    factory = functools.partial(_create_for_lab, key)
    if name.lower().endswith(UNTUNED):
        return Candidate(untuned_label(key), factory, (), entry.full_batch)
    return Candidate(key, factory, entry.search_space, entry.full_batch)


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> str:
    """``unknown optimizer 'adamx' (did you mean 'adam'?); valid optimizers: ...``."""
    valid = list(valid)
    close = difflib.get_close_matches(str(name).lower(), valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {kind} {name!r}{hint}; valid {kind}s: {', '.join(valid)}"


def optimizer_names() -> tuple[str, ...]:
    return tuple(CATALOG)
