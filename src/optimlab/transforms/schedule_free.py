"""Schedule-Free: an average of the iterates in place of a learning-rate schedule."""

from __future__ import annotations

import torch

from .. import checks
from ..fused.spec import Elementwise
from ..transform import Transform
from .basic import scale_by_learning_rate
from .wrapping import _Wrapper


def _open_unit_interval(name, value):
    if not 0 < checks._number(name, value) < 1:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")


def interpolation(hyperparams) -> float:
    """Schedule-Free's :math:`\\beta`: ``momentum`` (SGD) or ``betas[0]`` (AdamW)."""
    return hyperparams["momentum"] if "momentum" in hyperparams else hyperparams["betas"][0]


class schedule_free(_Wrapper):
    r"""Schedule-Free (Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky 2024, "The Road
    Less Scheduled", NeurIPS) around ``inner``, which gives the base direction :math:`d_t`
    at the parameters :math:`y` (SGD: :math:`g + \lambda y`; AdamW:
    :math:`g / (\sqrt{v_t/(1-\beta_2^t)} + \epsilon) + \lambda y`).

    The parameters hold :math:`y` in train mode; buffer ``z`` the SGD iterate
    (:math:`z_0 = y_0`). With :math:`k = t - 1`, :math:`\gamma_t = \eta\min(1, (k+1)/\text{warmup})`,
    :math:`\gamma_{\max} = \max_{s \le t}\gamma_s`, :math:`w_t = (k+1)^r\,\gamma_{\max}^{p}`
    (``weight_lr_power`` :math:`p`), :math:`c_t = w_t / \sum_{s\le t} w_s`:

    .. math:: y \leftarrow (1-c_t)\,y + c_t z + \gamma_t(\beta(1-c_t) - 1)\,d_t,
              \qquad z \leftarrow z - \gamma_t d_t

    which keeps :math:`y = (1-\beta)z + \beta x` with :math:`x` the weighted average of the
    :math:`z` (the point to evaluate; ``optimizer.eval()`` sets the parameters to it, see
    `optimlab.ScheduleFreeSGD`). The step raises unless the group's ``train_mode`` is True.
    Buffers ``weight_sum`` and ``lr_max`` hold :math:`\sum w` and :math:`\gamma_{\max}`
    (0-d, the same for every tensor of a group, as the package keeps them per group).
    """

    checks = {"lr": checks.learning_rate, "warmup_steps": checks.non_negative, "r": checks.non_negative,
              "weight_lr_power": checks.non_negative, "train_mode": checks.boolean}
    own_state_keys = ("z", "weight_sum", "lr_max")

    def __init__(self, inner: Transform, lr=1.0, warmup_steps: int = 0, r: float = 0.0,
                 weight_lr_power: float = 2.0, **interpolation_hyperparams) -> None:
        self.checks = {**self.checks, **{name: _open_unit_interval for name in interpolation_hyperparams}}
        super().__init__(inner, lr=lr, warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power,
                         train_mode=False, **interpolation_hyperparams)

    def init(self, params, hyperparams):
        scalars = [torch.zeros((), dtype=torch.float64, device=p.device) for p in params]
        return {**self.inner.init(params, hyperparams), "z": params.clone(), "weight_sum": params.wrap(scalars),
                "lr_max": params.wrap([torch.full_like(s, -1.0) for s in scalars])}

    fuses_after_inner = True

    def coefficients(self, hyperparams, step, state):
        """This step's learning rate and averaging weight; it moves ``lr_max`` and ``weight_sum``
        (computed once per step, for either path)."""
        if not hyperparams["train_mode"]:
            raise RuntimeError("a Schedule-Free step needs train mode: call optimizer.train() before training "
                               "and optimizer.eval() before evaluating")
        k = step - 1
        warmup = hyperparams["warmup_steps"]
        lr = scale_by_learning_rate.learning_rate(hyperparams, step) * ((k + 1) / warmup if k < warmup else 1.0)
        lr_max = max(lr, float(state["lr_max"][0]))
        weight = (k + 1) ** hyperparams["r"] * lr_max ** hyperparams["weight_lr_power"]
        weight_sum = float(state["weight_sum"][0]) + weight
        for buffer, value in ((state["lr_max"], lr_max), (state["weight_sum"], weight_sum)):
            for tensor in buffer:
                tensor.fill_(value)
        c = weight / weight_sum if weight_sum != 0 else 0.0
        return {"c": c, "y_rate": lr * (interpolation(hyperparams) * (1 - c) - 1), "neg_lr": -lr}

    def apply(self, updates, state, params, hyperparams, step):
        k = self.coefficients(hyperparams, step, state)
        direction = self.inner.update(updates, state, params, hyperparams, step)
        z = state["z"]
        params.lerp_(z, k["c"])
        params.add_(direction, alpha=k["y_rate"])
        z.add_(direction, alpha=k["neg_lr"])

    def elementwise(self, hyperparams):
        # u is the inner chain's direction d: y <- lerp(y, z, c) + y_rate d; z <- z - lr d.
        return Elementwise("", buffers=("z",), apply="p = lerp(p, $z, $c); p = FMA($y_rate, u, p); $z = FMA($neg_lr, u, $z);")


class scale_by_bias_corrected_rms(Transform):
    r"""Adam's denominator alone (Schedule-Free AdamW's direction):
    :math:`v_t = \beta_2 v_{t-1} + (1-\beta_2) g^2`, :math:`u \leftarrow g / (\sqrt{v_t/(1-\beta_2^t)} + \epsilon)`,
    with :math:`\beta_2` = ``betas[1]`` (``betas[0]`` is Schedule-Free's interpolation)."""

    checks = {"betas": checks.betas, "eps": checks.positive}
    state_keys = ("exp_avg_sq",)

    def __init__(self, betas=(0.9, 0.999), eps: float = 1e-8) -> None:
        super().__init__(betas=betas, eps=eps)

    def init(self, params, hyperparams):
        return {"exp_avg_sq": params.zeros_like()}

    def coefficients(self, hyperparams, step, state):
        beta2 = hyperparams["betas"][1]
        return {"beta2": beta2, "one_minus_beta2": 1 - beta2, "bias_correction2": 1 - beta2**step,
                "eps": hyperparams["eps"]}

    def update(self, updates, state, params, hyperparams, step):
        k = self.coefficients(hyperparams, step, state)
        v = state["exp_avg_sq"].mul_(k["beta2"]).addcmul_(updates, updates, value=k["one_minus_beta2"])
        return updates / (v / k["bias_correction2"]).sqrt_().add_(k["eps"])

    def elementwise(self, hyperparams):
        return Elementwise("$exp_avg_sq = FMA($one_minus_beta2 * u, u, $exp_avg_sq * $beta2); "
                           "R0 = $exp_avg_sq / $bias_correction2; SQRTS; u = u / (R0 + $eps);", ("exp_avg_sq",))
