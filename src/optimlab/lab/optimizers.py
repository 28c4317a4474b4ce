"""The optimizers the lab compares: the seed optimizers of `optimlab.create`, checked by name."""

from __future__ import annotations

from collections.abc import Iterable

import optimlab


def optimizer_names() -> tuple[str, ...]:
    return tuple(optimlab.optimizers())


def check_optimizers(names: Iterable[str]) -> list[str]:
    """The names lower-cased, or a ValueError naming the bad one and listing the valid ones."""
    valid = optimlab.optimizers()
    checked = []
    for name in names:
        if name.lower() not in valid:
            raise ValueError(f"unknown optimizer {name!r}; valid optimizers: {', '.join(valid)}")
        checked.append(name.lower())
    if not checked:
        raise ValueError(f"no optimizers given; valid optimizers: {', '.join(valid)}")
    return checked
