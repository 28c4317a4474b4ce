"""Checkpoints shared with torch.optim: an optimlab optimizer loads its torch.optim twin's
``state_dict`` and the twin loads optimlab's, each continuing as the other would.

What differs between the two formats, and what each conversion does about it:

* ``state[i]["step"]``: an int here (one bucket, one kernel call per group), a float32
  tensor in most torch.optim classes, absent in SGD's and Muon's. Loaded as an int (0
  where absent: SGD and Muon do not read it); saved as an int, which torch.optim's
  ``__setstate__`` turns back into its tensor.
* buffer names: where an optimlab buffer has another name in the twin
  (``Optimizer.torch_state_names``, e.g. Muon's ``ema`` is ``momentum_buffer``), saved
  under the twin's name and loaded from either.
* param-group keys: a key the checkpoint lacks takes this optimizer's default; options
  fixed at construction (``Optimizer.fixed_options``, e.g. Adam's
  ``decoupled_weight_decay``) are saved in every group, as torch.optim keeps them, and a
  checkpoint asking for another value raises ValueError; ``differentiable=True`` raises;
  ``foreach`` and ``fused`` stay the loading optimizer's (how to run is this process's
  choice: a twin saved with ``foreach=False`` must not turn the fused kernel off).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

#: torch.optim group options optimlab cannot honour, with the value it can.
_UNSUPPORTED = {"differentiable": False}
_EXECUTION = ("foreach", "fused")


def to_torch(state_dict: dict[str, Any], names: Mapping[str, str], fixed: Mapping[str, Any]) -> dict[str, Any]:
    """``Optimizer.state_dict()`` in the twin's names (new dicts; the tensors are shared)."""
    state = {
        index: {names.get(key, key): value for key, value in param_state.items()}
        for index, param_state in state_dict["state"].items()
    }
    groups = [{**group, **fixed} for group in state_dict["param_groups"]]
    return {**state_dict, "state": state, "param_groups": groups}


def from_torch(state_dict: Mapping[str, Any], names: Mapping[str, str], fixed: Mapping[str, Any],
               defaults: Mapping[str, Any], current: list[dict[str, Any]]) -> dict[str, Any]:
    """A torch.optim (or optimlab) ``state_dict`` as the optimizer with ``defaults`` and
    param groups ``current`` keeps it; raises ValueError, before anything is loaded, for
    what it cannot honour."""
    ours = {theirs: key for key, theirs in names.items()}
    groups = []
    for index, group in enumerate(state_dict["param_groups"]):
        for option, value in {**fixed, **_UNSUPPORTED}.items():
            if option in group and group[option] != value:
                raise ValueError(
                    f"param_groups[{index}] has {option}={group[option]!r}, which this optimizer "
                    f"cannot take (it was built with {option}={value!r})"
                    + ("; construct it with the checkpoint's value" if option in fixed else "")
                )
        kept = {key: value for key, value in group.items() if key not in fixed}
        execution = {key: current[index][key] for key in _EXECUTION if index < len(current)}
        groups.append({**defaults, **kept, **execution})
    state = {}
    for index, param_state in state_dict["state"].items():
        converted = {ours.get(key, key): value for key, value in param_state.items()}
        if converted:
            step = converted.get("step", 0)
            converted["step"] = int(step.item()) if torch.is_tensor(step) else int(step)
        state[index] = converted
    return {**state_dict, "state": state, "param_groups": groups}
