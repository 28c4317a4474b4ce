"""Skip the steps whose gradients are not finite."""

from __future__ import annotations

import torch

from .. import checks
from ..transform import Transform
from .wrapping import _Wrapper


class apply_if_finite(_Wrapper):
    r"""Run ``inner`` only on finite gradients (optax's ``apply_if_finite``).

    A step whose gradients hold an inf or a NaN anywhere in the param group is skipped:
    parameters and ``inner``'s state stay as they were, and the skip is counted
    (buffers ``skipped_steps``, all of them, and ``consecutive_skips``). ``inner`` numbers
    only the steps it takes (:math:`t - \text{skipped}`), so a run with a skipped step
    equals the run without that step. The step after ``max_consecutive_errors`` skips in a
    row raises a RuntimeError naming the parameter (default 5) instead of skipping again;
    unlike optax, which then applies the non-finite update.

    The check is one device-to-host read per step (is everything finite?).
    """

    checks = {"max_consecutive_errors": checks.positive_integer}
    own_state_keys = ("skipped_steps", "consecutive_skips")

    def __init__(self, inner: Transform, max_consecutive_errors: int = 5) -> None:
        super().__init__(inner, max_consecutive_errors=max_consecutive_errors)

    def init(self, params, hyperparams):
        counts = params.wrap([torch.zeros((), dtype=torch.int64, device=p.device) for p in params])
        return {**self.inner.init(params, hyperparams), "skipped_steps": counts,
                "consecutive_skips": counts.clone()}

    def apply(self, updates, state, params, hyperparams, step):
        skipped, consecutive = state["skipped_steps"], state["consecutive_skips"]
        finite = torch.stack([torch.isfinite(u).all() for u in updates]).tolist()
        if all(finite):
            for count in consecutive:
                count.zero_()
            self.inner.apply(updates, state, params, hyperparams, step - int(skipped[0]))
            return
        limit = hyperparams["max_consecutive_errors"]
        if int(consecutive[0]) >= limit:
            index = finite.index(False)
            raise RuntimeError(
                f"apply_if_finite: the gradient of {_describe(params[index], hyperparams)} is not finite "
                f"again after {limit} skipped steps in a row (max_consecutive_errors={limit})"
            )
        for count in (*skipped, *consecutive):
            count.add_(1)


def _describe(param: torch.Tensor, hyperparams) -> str:
    """'parameter 2 of its param group (shape (3, 4))', found by identity in the group."""
    position = next((i for i, p in enumerate(hyperparams.get("params", ())) if p is param), None)
    where = f"parameter {position} of its param group" if position is not None else "a parameter"
    return f"{where} (shape {tuple(param.shape)})"
