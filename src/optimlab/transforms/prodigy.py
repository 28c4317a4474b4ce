"""Prodigy: Adam with a learning rate it estimates (D-Adaptation's distance estimate)."""

from __future__ import annotations

import math

import torch

from .. import checks
from .basic import scale_by_learning_rate
from .wrapping import _InPlace


def _growth_rate(name, value):
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 1):  # inf allowed
        raise ValueError(f"{name} must be a number >= 1 (inf: no cap), got {value!r}")


def _optional_decay_rate(name, value):
    if value is not None:
        checks.decay_rate(name, value)


class scale_by_prodigy(_InPlace):
    r"""Prodigy (Mishchenko & Defazio 2024, "Prodigy: An Expeditiously Adaptive
    Parameter-Free Learner", ICML), as ``prodigyopt`` 1.1 computes it: the whole step
    (learning rate and weight decay included; it ends a chain).

    With :math:`d` the estimate of the distance to the solution (:math:`d_0` at first),
    :math:`\hat\eta = d\,\eta\,b_t` (:math:`b_t = \sqrt{1-\beta_2^t}/(1-\beta_1^t)` with
    ``use_bias_correction``, else 1), :math:`x_0` the initial parameters:

    .. math::
        m \leftarrow \beta_1 m + d(1-\beta_1) g, \qquad v \leftarrow \beta_2 v + d^2(1-\beta_2) g^2 \\
        r \leftarrow \beta_3 r + \tfrac{d}{d_0}\hat\eta\,\langle g, x_0 - x\rangle, \qquad
        s \leftarrow \beta_3 s + \tfrac{d}{d_0}\hat\eta\, g \\
        \hat d = c\, r / \lVert s\rVert_1, \qquad d \leftarrow \min(\max(d, \hat d),\ d\cdot\text{growth\_rate})
        \ \text{(the max with } d \text{ only while } d = d_0\text{; else } \max_s \hat d_s) \\
        x \leftarrow x - \hat\eta\,\big(m / (\sqrt v + d\,\epsilon) + \lambda x\big)

    (``safeguard_warmup``: :math:`s` grows by :math:`\tfrac{d}{d_0} d\,g`; ``decouple=False``:
    L2 decay added to :math:`g`; :math:`\beta_1 = 0`: :math:`d\,g` for :math:`m`.) The sums
    run over the param group's tensors (``prodigyopt`` sums over all groups: the same with
    one group); :math:`d`, :math:`\max\hat d` and :math:`r` are 0-d float64 buffers
    (``d``, ``d_max``, ``d_numerator``), ``s`` and ``p0`` are over every ``slice_p``-th element.
    """

    checks = {"lr": checks.learning_rate, "betas": checks.betas, "beta3": _optional_decay_rate, "eps": checks.positive,
              "weight_decay": checks.non_negative, "decouple": checks.boolean,
              "use_bias_correction": checks.boolean, "safeguard_warmup": checks.boolean, "d0": checks.positive,
              "d_coef": checks.positive, "growth_rate": _growth_rate, "slice_p": checks.positive_integer}
    state_keys = ("exp_avg", "exp_avg_sq", "s", "p0", "d", "d_max", "d_numerator")

    def __init__(self, lr=1.0, betas=(0.9, 0.999), beta3=None, eps=1e-8, weight_decay=0.0, decouple=True,
                 use_bias_correction=False, safeguard_warmup=False, d0=1e-6, d_coef=1.0,
                 growth_rate=float("inf"), slice_p=1) -> None:
        super().__init__(lr=lr, betas=betas, beta3=beta3, eps=eps, weight_decay=weight_decay, decouple=decouple,
                         use_bias_correction=use_bias_correction, safeguard_warmup=safeguard_warmup, d0=d0,
                         d_coef=d_coef, growth_rate=growth_rate, slice_p=slice_p)

    def init(self, params, hyperparams):
        sliced = [p.detach().flatten()[:: hyperparams["slice_p"]] for p in params]
        scalar = lambda value: params.wrap([torch.full((), value, dtype=torch.float64, device=p.device)  # noqa: E731
                                            for p in params])
        return {"exp_avg": params.zeros_like(), "exp_avg_sq": params.zeros_like(),
                "s": params.wrap([torch.zeros_like(x) for x in sliced]), "p0": params.wrap([x.clone() for x in sliced]),
                "d": scalar(hyperparams["d0"]), "d_max": scalar(hyperparams["d0"]), "d_numerator": scalar(0.0)}

    def apply(self, updates, state, params, hyperparams, step):
        # In place, in prodigyopt's order of operations: its d estimate amplifies rounding.
        hp = hyperparams
        beta1, beta2 = hp["betas"]
        beta3 = math.sqrt(beta2) if hp["beta3"] is None else hp["beta3"]
        d, d_max, d0 = float(state["d"][0]), float(state["d_max"][0]), hp["d0"]
        lr = scale_by_learning_rate.learning_rate(hp, step)
        bias = math.sqrt(1 - beta2**step) / (1 - beta1**step) if hp["use_bias_correction"] else 1.0
        dlr = d * lr * bias
        decay, decouple, slice_p = hp["weight_decay"], hp["decouple"], hp["slice_p"]
        grads = [g + decay * p if decay != 0 and not decouple else g for g, p in zip(updates, params)]
        numerator, denominator = float(state["d_numerator"][0]) * beta3, 0.0
        if lr > 0:
            s_scale = (d / d0) * (d if hp["safeguard_warmup"] else dlr)
            for i, (g, p) in enumerate(zip(grads, params)):
                sliced = g.flatten()[::slice_p]
                numerator += (d / d0) * dlr * torch.dot(sliced, state["p0"][i] - p.flatten()[::slice_p]).item()
                state["exp_avg"][i].mul_(beta1).add_(g, alpha=d * (1 - beta1))
                state["exp_avg_sq"][i].mul_(beta2).addcmul_(g, g, value=d * d * (1 - beta2))
                denominator += state["s"][i].mul_(beta3).add_(sliced, alpha=s_scale).abs().sum().item()
        if denominator == 0:  # as prodigyopt: no step (and, there, no step counted)
            return
        if lr > 0:
            d_hat = hp["d_coef"] * numerator / denominator
            if d == d0:
                d = max(d, d_hat)
            d_max = max(d_max, d_hat)
            d = min(d_max, d * hp["growth_rate"])
        for key, value in (("d", d), ("d_max", d_max), ("d_numerator", numerator)):
            for tensor in state[key]:
                tensor.fill_(value)
        for i, (g, p) in enumerate(zip(grads, params)):
            denom = state["exp_avg_sq"][i].sqrt().add_(d * hp["eps"])
            if decay != 0 and decouple:
                p.add_(p, alpha=-decay * dlr)
            if beta1 > 0:
                p.addcdiv_(state["exp_avg"][i], denom, value=-dlr)
            else:
                p.addcdiv_(g, denom, value=-dlr * d)
