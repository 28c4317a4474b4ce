"""D-Adaptation Adam: Adam with a learning rate it estimates from a lower bound on the
distance to the solution."""

from __future__ import annotations

import logging
import math

import torch

from .. import checks
from ..fused.spec import BucketSums, Elementwise
from .basic import scale_by_learning_rate
from .prodigy import _growth_rate, estimator_snippets, keep_estimate
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
    On the fused path the kernel finds an element whose :math:`s` is not 0 (the first, as a
    rule: the step is then taken), and steps and sums in one pass (`BucketSums` with a
    witness); `estimate` is the same update in Python.
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

    def coefficients(self, hyperparams, step, state):
        hp = hyperparams
        beta1, beta2 = hp["betas"]
        sqrt_beta2 = beta2**0.5
        d = float(state["d"][0])
        lr = scale_by_learning_rate.learning_rate(hp, step)
        bias = math.sqrt(1 - beta2**step) / (1 - beta1**step) if hp["use_bias_correction"] else 1.0
        dlr = d * lr * bias
        scale = hp["layer_scale"]
        return {"beta1": beta1, "beta2": beta2, "one_minus_beta2": 1 - beta2, "sqrt_beta2": sqrt_beta2,
                "one_minus_sqrt_beta2": 1 - sqrt_beta2, "exp_avg_scale": scale * dlr * (1 - beta1),
                "s_scale": dlr * (1 - sqrt_beta2), "dot_scale": scale * dlr, "layer_scale": scale, "d": d,
                "numerator_weighted": float(state["numerator_weighted"][0]), "growth_rate": hp["growth_rate"],
                "stepping": float(lr > 0), "lr": lr, "dlr": dlr, "neg_decay_dlr": -hp["weight_decay"] * dlr,
                "weight_decay": hp["weight_decay"], "eps": hp["eps"]}

    @staticmethod
    def estimate(k, numerator: float, s_l1: float) -> dict[str, float]:
        r"""The new estimate from the step's sums (``numerator``: the step's
        :math:`\rho\hat\eta\langle g, s/a\rangle`, ``s_l1``: :math:`\rho\lVert s\rVert_1`),
        as dadaptation updates it (Python's max and min); the fused path's `BucketSums`
        computes the same in C."""
        weighted = k["sqrt_beta2"] * k["numerator_weighted"] + k["one_minus_sqrt_beta2"] * numerator
        live = k["stepping"] and s_l1 != 0  # as dadaptation: no step where the sum is 0
        d = d_hat = k["d"]
        if live:
            d_hat = weighted / (k["one_minus_sqrt_beta2"] * s_l1)
            d = max(d, min(d_hat, d * k["growth_rate"]))
        return {"live": float(live), "d_hat": d_hat, "new_d": d,
                "new_weighted": weighted if live else k["numerator_weighted"]}

    def absorb(self, scalars, state, hyperparams, step):
        if hyperparams["log_every"] > 0 and (step - 1) % hyperparams["log_every"] == 0 and scalars["live"]:
            k = self.coefficients(hyperparams, step, state)
            logger.info("lr: %s dlr: %s d_hat: %s, d: %s", k["lr"], k["dlr"], scalars["d_hat"], scalars["new_d"])
        keep_estimate(state, scalars, {"d": "new_d", "numerator_weighted": "new_weighted"})

    def apply(self, updates, state, params, hyperparams, step):
        # In place, in dadaptation's order of operations: its d estimate amplifies rounding.
        hp, k = hyperparams, self.coefficients(hyperparams, step, state)
        decay, decouple, eps = hp["weight_decay"], hp["decouple"], hp["eps"]
        grads = [g + decay * p if decay != 0 and not decouple else g for g, p in zip(updates, params)]
        numerator, s_l1 = 0.0, 0.0
        if k["stepping"]:
            for i, g in enumerate(grads):
                m, v, s = state["exp_avg"][i], state["exp_avg_sq"][i], state["s"][i]
                denom = v.sqrt().add_(eps)
                numerator += k["dot_scale"] * torch.dot(g.flatten(), s.div(denom).flatten()).item()
                m.mul_(k["beta1"]).add_(g, alpha=k["exp_avg_scale"])
                v.mul_(k["beta2"]).addcmul_(g, g, value=k["one_minus_beta2"])
                s.mul_(k["sqrt_beta2"]).add_(g, alpha=k["s_scale"])
                s_l1 += k["layer_scale"] * s.abs().sum().item()
        estimate = self.estimate(k, numerator, s_l1)
        if not estimate["live"]:
            return
        self.absorb(estimate, state, hp, step)
        for i, p in enumerate(params):
            denom = state["exp_avg_sq"][i].sqrt().add_(eps)
            if decay != 0 and decouple:
                p.add_(p, alpha=k["neg_decay_dlr"])
            p.addcdiv_(state["exp_avg"][i], denom, value=-1)

    def elementwise(self, hyperparams):
        grad, decoupled, moments = estimator_snippets(hyperparams, "$one_minus_beta2", "$sqrt_beta2")
        step = moments + f" if ($live != (T)0) {{ {decoupled}x = x + (-$exp_avg) / (R0 + $eps); }}"
        # Python's max(a, b) is a unless b > a, min(a, b) a unless b < a: the same choices here.
        return Elementwise(step + " u = x - p;", ("exp_avg", "exp_avg_sq", "s"), apply=step + " p = x;",
                           bucket_sums=BucketSums(
            sums=(("dot", f"(double){grad} * (double)($s / (SQRT($exp_avg_sq) + $eps))"),
                  ("l1", f"(double)ABS(FMA($s_scale, {grad}, $s * $sqrt_beta2))")),
            scalars=(("numerator", "$dot_scale * $dot"),
                     ("s_l1", "$layer_scale * $l1"),
                     ("weighted", "$sqrt_beta2 * $numerator_weighted + $one_minus_sqrt_beta2 * $numerator"),
                     ("live", "$stepping != 0 && $s_l1 != 0"),
                     ("d_hat", "$live != 0 ? $weighted / ($one_minus_sqrt_beta2 * $s_l1) : $d"),
                     ("capped", "$d * $growth_rate < $d_hat ? $d * $growth_rate : $d_hat"),
                     ("new_d", "$live != 0 && $capped > $d ? $capped : $d"),
                     ("new_weighted", "$live != 0 ? $weighted : $numerator_weighted")),
            # the step reads `live` only: any element whose s is not 0 proves it
            witness=("live", f"$stepping != (T)0 && FMA($s_scale, {grad}, $s * $sqrt_beta2) != (T)0")))
