"""Prodigy: Adam with a learning rate it estimates (D-Adaptation's distance estimate)."""

from __future__ import annotations

import math

import torch

from .. import checks
from ..fused.spec import BucketSums, Elementwise
from .basic import scale_by_learning_rate
from .wrapping import _InPlace


def _growth_rate(name, value):
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 1):  # inf allowed
        raise ValueError(f"{name} must be a number >= 1 (inf: no cap), got {value!r}")


def _optional_decay_rate(name, value):
    if value is not None:
        checks.decay_rate(name, value)


def estimator_snippets(hyperparams, exp_avg_sq_scale: str, s_decay: str) -> tuple[str, str, str]:
    """What Prodigy's and D-Adaptation's fused steps share: the gradient with L2 decay (an
    expression), the decoupled decay of ``x`` (statements), and the step's start: ``u`` the
    gradient, ``x`` the parameter, the moments and the sum ``s`` updated when stepping, and
    ``R0`` the square root of the second moment."""
    decay = hyperparams["weight_decay"]
    grad = "(u + $weight_decay * p)" if decay != 0 and not hyperparams["decouple"] else "u"
    decoupled = "x = FMA($neg_decay_dlr, x, x); " if decay != 0 and hyperparams["decouple"] else ""
    moments = (f"u = {grad}; T x = p;"
               " if ($stepping != (T)0) { $exp_avg = FMA($exp_avg_scale, u, $exp_avg * $beta1);"
               f" $exp_avg_sq = FMA({exp_avg_sq_scale} * u, u, $exp_avg_sq * $beta2);"
               f" $s = FMA($s_scale, u, $s * {s_decay}); }}"
               " R0 = $exp_avg_sq; SQRTS;")
    return grad, decoupled, moments


def keep_estimate(state, scalars, names: dict[str, str]) -> None:
    """Fill each 0-d state buffer ``key`` (one per tensor) with ``scalars[names[key]]``."""
    for key, name in names.items():
        for tensor in state[key]:
            tensor.fill_(scalars[name])


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
    On the fused path (``slice_p=1``) the kernel measures the sums (`BucketSums`) and steps
    with the new estimate in the same call; `estimate` is the same update in Python.
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

    def coefficients(self, hyperparams, step, state):
        hp = hyperparams
        beta1, beta2 = hp["betas"]
        beta3 = math.sqrt(beta2) if hp["beta3"] is None else hp["beta3"]
        d, d0 = float(state["d"][0]), hp["d0"]
        lr = scale_by_learning_rate.learning_rate(hp, step)
        bias = math.sqrt(1 - beta2**step) / (1 - beta1**step) if hp["use_bias_correction"] else 1.0
        dlr = d * lr * bias
        return {"beta1": beta1, "beta2": beta2, "beta3": beta3, "exp_avg_scale": d * (1 - beta1),
                "exp_avg_sq_scale": d * d * (1 - beta2), "s_scale": (d / d0) * (d if hp["safeguard_warmup"] else dlr),
                "numerator_scale": (d / d0) * dlr, "d_numerator": float(state["d_numerator"][0]),
                "d": d, "d_max": float(state["d_max"][0]), "d0": d0, "d_coef": hp["d_coef"],
                "growth_rate": hp["growth_rate"], "stepping": float(lr > 0), "dlr": dlr, "neg_dlr": -dlr,
                "neg_decay_dlr": -hp["weight_decay"] * dlr, "weight_decay": hp["weight_decay"], "eps": hp["eps"]}

    @staticmethod
    def estimate(k, numerator: float, denominator: float) -> dict[str, float]:
        r"""The new estimate from the step's sums (``numerator``: :math:`r`, ``denominator``:
        :math:`\lVert s\rVert_1`), as prodigyopt updates it (Python's max and min); the
        fused path's `BucketSums` computes the same in C."""
        live = k["stepping"] and denominator != 0  # as prodigyopt: no step where the denominator is 0
        d, d_max = k["d"], k["d_max"]
        if live:
            d_hat = k["d_coef"] * numerator / denominator
            if d == k["d0"]:
                d = max(d, d_hat)
            d_max = max(d_max, d_hat)
            d = min(d_max, d * k["growth_rate"])
        return {"live": float(live), "new_d": d, "new_d_max": d_max,
                "new_numerator": numerator if live else k["d_numerator"]}

    def absorb(self, scalars, state, hyperparams, step):
        keep_estimate(state, scalars, {"d": "new_d", "d_max": "new_d_max", "d_numerator": "new_numerator"})

    def apply(self, updates, state, params, hyperparams, step):
        # In place, in prodigyopt's order of operations: its d estimate amplifies rounding.
        hp, k = hyperparams, self.coefficients(hyperparams, step, state)
        decay, decouple, slice_p = hp["weight_decay"], hp["decouple"], hp["slice_p"]
        grads = [g + decay * p if decay != 0 and not decouple else g for g, p in zip(updates, params)]
        numerator, denominator = k["d_numerator"] * k["beta3"], 0.0
        if k["stepping"]:
            for i, (g, p) in enumerate(zip(grads, params)):
                sliced = g.flatten()[::slice_p]
                numerator += k["numerator_scale"] * torch.dot(sliced, state["p0"][i] - p.flatten()[::slice_p]).item()
                state["exp_avg"][i].mul_(k["beta1"]).add_(g, alpha=k["exp_avg_scale"])
                state["exp_avg_sq"][i].mul_(k["beta2"]).addcmul_(g, g, value=k["exp_avg_sq_scale"])
                denominator += state["s"][i].mul_(k["beta3"]).add_(sliced, alpha=k["s_scale"]).abs().sum().item()
        estimate = self.estimate(k, numerator, denominator)
        if not estimate["live"]:
            return
        self.absorb(estimate, state, hp, step)
        d = estimate["new_d"]
        for i, (g, p) in enumerate(zip(grads, params)):
            denom = state["exp_avg_sq"][i].sqrt().add_(d * k["eps"])
            if decay != 0 and decouple:
                p.add_(p, alpha=k["neg_decay_dlr"])
            if k["beta1"] > 0:
                p.addcdiv_(state["exp_avg"][i], denom, value=k["neg_dlr"])
            else:
                p.addcdiv_(g, denom, value=k["neg_dlr"] * d)

    def elementwise(self, hyperparams):
        if hyperparams["slice_p"] != 1:  # s and p0 hold every slice_p-th element: not the kernel's layout
            return None
        grad, decoupled, moments = estimator_snippets(hyperparams, "$exp_avg_sq_scale", "$beta3")
        moment = "$exp_avg" if hyperparams["betas"][0] > 0 else "u"
        scale = "$neg_dlr" if hyperparams["betas"][0] > 0 else "$neg_dlr_d"
        step = moments + f" if ($live != (T)0) {{ {decoupled}x = x + ({scale} * {moment}) / (R0 + $eps_term); }}"
        # Python's max(a, b) is a unless b > a, min(a, b) a unless b < a: the same choices here.
        return Elementwise(step + " u = x - p;", ("exp_avg", "exp_avg_sq", "s", "p0"), apply=step + " p = x;",
                           bucket_sums=BucketSums(
            sums=(("dot", f"(double){grad} * (double)($p0 - p)"),
                  ("l1", f"(double)ABS(FMA($s_scale, {grad}, $s * $beta3))")),
            scalars=(("numerator", "$d_numerator * $beta3 + $numerator_scale * $dot"),
                     ("live", "$stepping != 0 && $l1 != 0"),
                     ("d_hat", "$d_coef * $numerator / $l1"),
                     ("raised", "$d == $d0 && $d_hat > $d ? $d_hat : $d"),
                     ("new_d_max", "$live != 0 && $d_hat > $d_max ? $d_hat : $d_max"),
                     ("grown", "$raised * $growth_rate"),
                     ("new_d", "$live == 0 ? $d : $grown < $new_d_max ? $grown : $new_d_max"),
                     ("new_numerator", "$live != 0 ? $numerator : $d_numerator"),
                     ("eps_term", "$new_d * $eps"),
                     ("neg_dlr_d", "$neg_dlr * $new_d"))))
