"""D-Adaptation Adam: Adam with a learning rate it estimates from a lower bound on the
distance to the solution."""

from __future__ import annotations

import logging
import math

import torch

from .. import checks
from .basic import scale_by_learning_rate
from .prodigy import _growth_rate
from .wrapping import _InPlace

logger = logging.getLogger(__name__)


class scale_by_dadapt_adam(_InPlace):
    r"""D-Adaptation Adam (Defazio & Mishchenko 2023, "Learning-Rate-Free Learning by
    D-Adaptation", ICML), as ``dadaptation`` 3.2 computes it: the whole step (learning rate
    and weight decay included; it ends a chain).

    With :math:`\hat\eta = d\,\eta\,b_t` (:math:`b_t = \sqrt{1-\beta_2^t}/(1-\beta_1^t)` with
    ``use_bias_correction``, else 1), :math:`\rho` = ``layer_scale`` (a group key, 1.0) and
    the denominator :math:`a = \sqrt v + \epsilon` of the previous step:

    .. math::
        r \leftarrow \sqrt{\beta_2}\, r + (1-\sqrt{\beta_2})\,\rho\hat\eta\,\langle g, s / a\rangle \\
        m \leftarrow \beta_1 m + \rho\hat\eta(1-\beta_1) g, \quad v \leftarrow \beta_2 v + (1-\beta_2) g^2, \quad
        s \leftarrow \sqrt{\beta_2}\, s + \hat\eta(1-\sqrt{\beta_2})\, g \\
        \hat d = \frac{r}{(1-\sqrt{\beta_2})\,\rho\lVert s\rVert_1}, \qquad
        d \leftarrow \max(d, \min(\hat d, d\cdot\text{growth\_rate})), \qquad
        x \leftarrow x - m / (\sqrt v + \epsilon) - \lambda\hat\eta\, x \ \ (\text{decoupled})

    (``decouple=False``, the default: L2 decay added to :math:`g`.) Sums over the param
    group's tensors (``dadaptation`` sums over all groups: the same with one group);
    :math:`d` and :math:`r` are 0-d float64 buffers ``d`` and ``numerator_weighted``.
    """

    checks = {"lr": checks.learning_rate, "betas": checks.betas, "eps": checks.positive,
              "weight_decay": checks.non_negative, "decouple": checks.boolean,
              "use_bias_correction": checks.boolean, "d0": checks.positive, "growth_rate": _growth_rate,
              "layer_scale": checks.positive, "log_every": checks.non_negative}
    state_keys = ("exp_avg", "exp_avg_sq", "s", "d", "numerator_weighted")

    def __init__(self, lr=1.0, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, log_every=0, decouple=False,
                 use_bias_correction=False, d0=1e-6, growth_rate=float("inf")) -> None:
        super().__init__(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, log_every=log_every,
                         decouple=decouple, use_bias_correction=use_bias_correction, d0=d0,
                         growth_rate=growth_rate, layer_scale=1.0)

    def init(self, params, hyperparams):
        scalar = lambda value: params.wrap([torch.full((), value, dtype=torch.float64, device=p.device)  # noqa: E731
                                            for p in params])
        return {"exp_avg": params.zeros_like(), "exp_avg_sq": params.zeros_like(), "s": params.zeros_like(),
                "d": scalar(hyperparams["d0"]), "numerator_weighted": scalar(0.0)}

    def apply(self, updates, state, params, hyperparams, step):
        # In place, in dadaptation's order of operations: its d estimate amplifies rounding.
        hp = hyperparams
        beta1, beta2 = hp["betas"]
        sqrt_beta2 = beta2**0.5
        d = float(state["d"][0])
        lr = scale_by_learning_rate.learning_rate(hp, step)
        bias = math.sqrt(1 - beta2**step) / (1 - beta1**step) if hp["use_bias_correction"] else 1.0
        dlr = d * lr * bias
        decay, decouple, eps, scale = hp["weight_decay"], hp["decouple"], hp["eps"], hp["layer_scale"]
        grads = [g + decay * p if decay != 0 and not decouple else g for g, p in zip(updates, params)]
        numerator, s_l1 = 0.0, 0.0
        if lr > 0:
            for i, g in enumerate(grads):
                m, v, s = state["exp_avg"][i], state["exp_avg_sq"][i], state["s"][i]
                denom = v.sqrt().add_(eps)
                numerator += scale * dlr * torch.dot(g.flatten(), s.div(denom).flatten()).item()
                m.mul_(beta1).add_(g, alpha=scale * dlr * (1 - beta1))
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                s.mul_(sqrt_beta2).add_(g, alpha=dlr * (1 - sqrt_beta2))
                s_l1 += scale * s.abs().sum().item()
        weighted = sqrt_beta2 * float(state["numerator_weighted"][0]) + (1 - sqrt_beta2) * numerator
        if s_l1 == 0:  # as dadaptation: no step
            return
        d_hat = d
        if lr > 0:
            d_hat = weighted / ((1 - sqrt_beta2) * s_l1)
            d = max(d, min(d_hat, d * hp["growth_rate"]))
        if hp["log_every"] > 0 and (step - 1) % hp["log_every"] == 0:
            logger.info("lr: %s dlr: %s d_hat: %s, d: %s", lr, dlr, d_hat, d)
        for key, value in (("d", d), ("numerator_weighted", weighted)):
            for tensor in state[key]:
                tensor.fill_(value)
        for i, p in enumerate(params):
            denom = state["exp_avg_sq"][i].sqrt().add_(eps)
            if decay != 0 and decouple:
                p.add_(p, alpha=-decay * dlr)
            p.addcdiv_(state["exp_avg"][i], denom, value=-1)
