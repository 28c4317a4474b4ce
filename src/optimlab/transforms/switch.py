"""Start with one transform, continue with another."""

from __future__ import annotations

from collections import Counter
from typing import Any

from .. import checks
from ..transform import Part, Transform
from .wrapping import _InPlace

PREFIX = "second_"


class switch(_InPlace):
    r"""``first`` for the steps :math:`t \le` ``at``, then ``second`` (Keskar & Socher 2017,
    "Improving Generalization Performance by Switching from Adam to SGD", with the switch
    at a given step; `optimlab.SWATS` switches by their criterion).

    .. math:: \theta_t = \theta_{t-1} + \begin{cases} \mathrm{first}(g_t), & t \le T \\
              \mathrm{second}(g_t)\ \text{(its step } t - T\text{)}, & t > T \end{cases}

    Each keeps its own state; ``second`` starts fresh at the switch, counting its steps
    from 1. Hyperparameters: ``switch_at`` (:math:`T`, default 1000), ``first``'s under
    their names, ``second``'s under theirs where ``first`` lacks them and as
    ``second_<name>`` where both have one (``switch(adam(1e-3), sgd(0.1))``: ``lr`` is
    Adam's, ``second_lr`` SGD's). The step count is in the state, so the switch survives a
    checkpoint.
    """

    checks = {"switch_at": checks.positive_integer}

    def __init__(self, first: Transform, second: Transform, at: int = 1000) -> None:
        counts = Counter(key for t in (first, second) for key in t.state_keys)
        # State keys as a chain of the two prefixes them: by position, where both use a name.
        self.parts = tuple(Part(t, f"{i}." if any(counts[k] > 1 for k in t.state_keys) else "")
                           for i, t in enumerate((first, second)))
        self.first, self.second = first, second
        self.renamed = {name: PREFIX + name for name in second.hyperparams if name in first.hyperparams}
        second_params = {self.renamed.get(k, k): v for k, v in second.hyperparams.items()}
        super().__init__(**first.hyperparams, **second_params, switch_at=at)
        self.state_keys = tuple(part.prefix + key for part in self.parts for key in part.transform.state_keys)

    def second_hyperparams(self, hyperparams) -> dict[str, Any]:
        """The param group as ``second`` reads it: its renamed hyperparameters under their own names."""
        return {**hyperparams, **{name: hyperparams[renamed] for name, renamed in self.renamed.items()}}

    def validate(self, hyperparams):
        super().validate(hyperparams)
        self.first.validate(hyperparams)
        self.second.validate(self.second_hyperparams(hyperparams))

    def init(self, params, hyperparams):
        state = {}
        self.parts[0].store(state, self.first.init(params, hyperparams))
        self.parts[1].store(state, self.second.init(params, self.second_hyperparams(hyperparams)))
        return state

    def apply(self, updates, state, params, hyperparams, step):
        at = hyperparams["switch_at"]
        if step <= at:
            self.parts[0].run("apply", updates, state, params, hyperparams, step)
        else:
            self.parts[1].run("apply", updates, state, params, self.second_hyperparams(hyperparams), step - at)
