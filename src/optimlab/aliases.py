"""The classic optimizers, each a chain of transforms, in two forms:

* lowercase functions (``adam(lr=...)``) return the `chain`, optax-style, to compose
  further or wrap with `optimlab.Optimizer`;
* torch.optim-style classes (``Adam(params, lr=...)``) take the same keyword names,
  positions and defaults as the torch.optim class of the same name.

torch.optim's execution options are accepted: ``foreach`` selects the multi-tensor or
for-loop path; ``fused=True`` the fused path (one compiled kernel per chain, used by
default where it pays, see docs/performance.md; it raises for an optimizer whose chain is
not elementwise: Adafactor, Muon); ``capturable`` is accepted and ignored;
``differentiable=True`` raises, since steps run without autograd.

Each class is registered with `alias` (``optimlab`` exports every registered class and
its function form, and lists them nowhere else). In the docstrings' math, ``g`` is the
gradient (negated with ``maximize=True``), ``p`` the parameter, ``t`` the step (1 on the
first) and ``lr`` the learning rate, a number or a schedule (`optimlab.schedules`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .optimizer import Optimizer
from .transform import Transform, chain
from .transforms import (
    add_decayed_weights,
    clip_by_block_rms,
    ema,
    maximize as maximize_,
    nesterov_ema,
    orthogonalize_by_newton_schulz,
    partition,
    scale_by_adadelta,
    scale_by_adagrad,
    scale_by_adam,
    scale_by_adamax,
    scale_by_factored_rms,
    scale_by_inverse_time_decay,
    scale_by_learning_rate,
    scale_by_lion,
    scale_by_nadam,
    scale_by_radam,
    scale_by_relative_step_size,
    scale_by_rms,
    scale_by_shape,
    trace,
)
from .transforms.adabelief import scale_by_belief
from .transforms.ademamix import scale_by_ademamix
from .transforms.adopt import fourth_root, scale_by_adopt
from .transforms.mars import scale_by_mars
from .transforms.adafactor import EPS as ADAFACTOR_EPS, check_real
from .transforms.muon import NS_COEFFICIENTS, check_matrices
from .transforms.shampoo import scale_by_shampoo
from .transforms.soap import scale_by_soap
from .transforms.kron import scale_by_kron
from .transforms.swats import scale_by_swats
from .transforms.prodigy import scale_by_prodigy
from .transforms.dadapt_adam import scale_by_dadapt_adam
from .transforms.schedule_free import interpolation, scale_by_bias_corrected_rms, schedule_free
from .transforms.trust_ratio import scale_by_lars, scale_by_trust_ratio
from .transforms.cautious import cautious


#: Every public name of the aliases, classes and their function forms (`alias` fills it).
EXPORTS: dict[str, Any] = {}


def alias(function: Callable[..., Transform]):
    """Register the decorated Optimizer class as the torch.optim-style form of ``function``
    (the chain it builds): `optimlab` exports both."""

    def register(cls: type[Optimizer]) -> type[Optimizer]:
        cls.chain_function = staticmethod(function)
        EXPORTS[cls.__name__] = cls
        EXPORTS[function.__name__] = function
        return cls

    return register


def _with_weight_decay(
    preconditioner: Transform, lr, weight_decay: float, decoupled: bool, maximize: bool
) -> chain:
    """maximize -> [L2 decay] -> preconditioner -> [decoupled decay] -> -lr."""
    decay = add_decayed_weights(weight_decay)
    if decoupled:
        return chain(maximize_(maximize), preconditioner, decay, scale_by_learning_rate(lr))
    return chain(maximize_(maximize), decay, preconditioner, scale_by_learning_rate(lr))


def sgd(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False) -> chain:
    r"""(Stochastic) gradient descent with optional heavy-ball or Nesterov momentum
    (Polyak 1964; Sutskever et al. 2013), torch.optim.SGD's form::

        g <- g + weight_decay * p                                   (L2)
        b <- g on the first step, else momentum * b + (1 - dampening) * g
        d <- g + momentum * b if nesterov else b   (d = g while momentum = 0)
        p <- p - lr * d

    Arguments (torch.optim.SGD's defaults): ``lr=1e-3``, ``momentum=0`` (no buffer is
    kept), ``dampening=0``, ``weight_decay=0``, ``nesterov=False`` (needs momentum > 0 and
    dampening = 0), ``maximize=False``. Chain: `maximize`, `add_decayed_weights`, `trace`,
    `scale_by_learning_rate`.
    """
    return _with_weight_decay(trace(momentum, dampening, nesterov), lr, weight_decay, False, maximize)


def ema_momentum(lr=1e-3, momentum=0.9, weight_decay=0.0, maximize=False) -> chain:
    r"""SGD whose step follows an exponential moving average of the gradients::

        g <- g + weight_decay * p
        v <- momentum * v + (1 - momentum) * g                      (v = 0 at first)
        p <- p - lr * v

    Unlike SGD's momentum, the first step is damped and the steady-state step does not
    grow with ``momentum``. Arguments: ``lr=1e-3``, ``momentum=0.9`` (in [0, 1)),
    ``weight_decay=0``, ``maximize=False``. Chain: `maximize`, `add_decayed_weights`,
    `ema`, `scale_by_learning_rate`.
    """
    return _with_weight_decay(ema(momentum), lr, weight_decay, False, maximize)


def adagrad(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10, maximize=False) -> chain:
    r"""Adagrad (Duchi, Hazan & Singer 2011), with torch.optim's learning-rate decay::

        g <- g + weight_decay * p
        G <- G + g^2                                  (G = initial_accumulator_value at first)
        p <- p - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(G) + eps)

    Arguments (torch.optim.Adagrad's defaults): ``lr=1e-2``, ``lr_decay=0``,
    ``weight_decay=0``, ``initial_accumulator_value=0``, ``eps=1e-10``,
    ``maximize=False``. Sparse gradients update only the rows they touch. Chain:
    `maximize`, `add_decayed_weights`, `scale_by_adagrad`, `scale_by_inverse_time_decay`,
    `scale_by_learning_rate`.
    """
    return chain(
        maximize_(maximize),
        add_decayed_weights(weight_decay),
        scale_by_adagrad(initial_accumulator_value, eps),
        scale_by_inverse_time_decay(lr_decay),
        scale_by_learning_rate(lr),
    )


def adadelta(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False) -> chain:
    r"""Adadelta (Zeiler 2012); ``lr`` only rescales the paper's learning-rate-free step::

        g <- g + weight_decay * p
        E[g^2] <- rho * E[g^2] + (1 - rho) * g^2
        d <- sqrt(E[d^2] + eps) / sqrt(E[g^2] + eps) * g
        E[d^2] <- rho * E[d^2] + (1 - rho) * d^2
        p <- p - lr * d

    Arguments (torch.optim.Adadelta's defaults): ``lr=1.0``, ``rho=0.9``, ``eps=1e-6``,
    ``weight_decay=0``, ``maximize=False``. Chain: `maximize`, `add_decayed_weights`,
    `scale_by_adadelta`, `scale_by_learning_rate`.
    """
    return _with_weight_decay(scale_by_adadelta(rho, eps), lr, weight_decay, False, maximize)


def rmsprop(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, maximize=False) -> chain:
    r"""RMSprop (Hinton 2012; centered: Graves 2013), with optional momentum on the scaled step::

        g <- g + weight_decay * p
        v <- alpha * v + (1 - alpha) * g^2
        m <- alpha * m + (1 - alpha) * g,  v~ = v - m^2      (centered; else v~ = v)
        d <- g / (sqrt(v~) + eps)
        b <- momentum * b + d,  d <- b                        (momentum > 0)
        p <- p - lr * d

    Arguments (torch.optim.RMSprop's defaults): ``lr=1e-2``, ``alpha=0.99``, ``eps=1e-8``,
    ``weight_decay=0``, ``momentum=0``, ``centered=False``, ``maximize=False``. Chain:
    `maximize`, `add_decayed_weights`, `scale_by_rms`, `trace`, `scale_by_learning_rate`.
    """
    return chain(
        maximize_(maximize),
        add_decayed_weights(weight_decay),
        scale_by_rms(alpha, eps, centered),
        trace(momentum),
        scale_by_learning_rate(lr),
    )


def adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False, decoupled_weight_decay=False) -> chain:
    r"""Adam (Kingma & Ba 2015; AMSGrad with ``amsgrad=True``, Reddi et al. 2018)::

        g <- g + weight_decay * p             (L2; decoupled_weight_decay: p <- p - lr * weight_decay * p)
        m <- beta1 * m + (1 - beta1) * g
        v <- beta2 * v + (1 - beta2) * g^2,   v^ = max of the v so far (amsgrad) or v
        p <- p - lr * (m / (1 - beta1^t)) / (sqrt(v^ / (1 - beta2^t)) + eps)

    Arguments (torch.optim.Adam's defaults): ``lr=1e-3``, ``betas=(0.9, 0.999)``
    (beta1, beta2), ``eps=1e-8``, ``weight_decay=0``, ``amsgrad=False``,
    ``maximize=False``, ``decoupled_weight_decay=False`` (True: AdamW). Chain: `maximize`,
    [`add_decayed_weights`], `scale_by_adam`, [`add_decayed_weights`],
    `scale_by_learning_rate`.
    """
    return _with_weight_decay(scale_by_adam(betas, eps, amsgrad), lr, weight_decay, decoupled_weight_decay, maximize)


def adamw(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, maximize=False) -> chain:
    r"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter 2019)::

        m <- beta1 * m + (1 - beta1) * g
        v <- beta2 * v + (1 - beta2) * g^2,   v^ = max of the v so far (amsgrad) or v
        p <- p - lr * [(m / (1 - beta1^t)) / (sqrt(v^ / (1 - beta2^t)) + eps) + weight_decay * p]

    Arguments (torch.optim.AdamW's defaults): ``lr=1e-3``, ``betas=(0.9, 0.999)``,
    ``eps=1e-8``, ``weight_decay=1e-2``, ``amsgrad=False``, ``maximize=False``. Chain:
    `maximize`, `scale_by_adam`, `add_decayed_weights`, `scale_by_learning_rate`.
    """
    return adam(lr, betas, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay=True)


def adamax(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, maximize=False) -> chain:
    r"""AdaMax, Adam with the infinity norm (Kingma & Ba 2015, section 7.1)::

        g <- g + weight_decay * p
        m <- beta1 * m + (1 - beta1) * g
        u <- max(beta2 * u, |g| + eps)
        p <- p - lr / (1 - beta1^t) * m / u

    Arguments (torch.optim.Adamax's defaults): ``lr=2e-3``, ``betas=(0.9, 0.999)``,
    ``eps=1e-8``, ``weight_decay=0``, ``maximize=False``. Chain: `maximize`,
    `add_decayed_weights`, `scale_by_adamax`, `scale_by_learning_rate`.
    """
    return _with_weight_decay(scale_by_adamax(betas, eps), lr, weight_decay, False, maximize)


def nadam(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3, decoupled_weight_decay=False, maximize=False) -> chain:
    r"""NAdam, Adam with Nesterov momentum (Dozat 2016)::

        g <- g + weight_decay * p             (L2; decoupled_weight_decay: p <- p - lr * weight_decay * p)
        mu_t = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay)),  P_t = mu_1 * ... * mu_t
        m, v: Adam's moments
        p <- p - lr * [(1 - mu_t) / (1 - P_t) * g + mu_{t+1} / (1 - P_t * mu_{t+1}) * m]
                    / (sqrt(v / (1 - beta2^t)) + eps)

    Arguments (torch.optim.NAdam's defaults): ``lr=2e-3``, ``betas=(0.9, 0.999)``,
    ``eps=1e-8``, ``weight_decay=0``, ``momentum_decay=4e-3``,
    ``decoupled_weight_decay=False``, ``maximize=False``. Chain: `maximize`,
    [`add_decayed_weights`], `scale_by_nadam`, [`add_decayed_weights`],
    `scale_by_learning_rate`.
    """
    return _with_weight_decay(scale_by_nadam(betas, eps, momentum_decay), lr, weight_decay, decoupled_weight_decay, maximize)


def radam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False, maximize=False) -> chain:
    r"""RAdam, Adam with a rectified adaptive learning rate (Liu et al. 2020)::

        g <- g + weight_decay * p             (L2; decoupled_weight_decay: p <- p - lr * weight_decay * p)
        m, v: Adam's moments;  rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
        r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
        p <- p - lr * m / (1 - beta1^t) * r_t * sqrt(1 - beta2^t) / (sqrt(v) + eps)   (rho_t > 5)
        p <- p - lr * m / (1 - beta1^t)                                             (else)

    Arguments (torch.optim.RAdam's defaults): ``lr=1e-3``, ``betas=(0.9, 0.999)``,
    ``eps=1e-8``, ``weight_decay=0``, ``decoupled_weight_decay=False``,
    ``maximize=False``. Chain: `maximize`, [`add_decayed_weights`], `scale_by_radam`,
    [`add_decayed_weights`], `scale_by_learning_rate`.
    """
    return _with_weight_decay(scale_by_radam(betas, eps), lr, weight_decay, decoupled_weight_decay, maximize)


def lion(lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, maximize=False) -> chain:
    r"""Lion, the sign of an interpolated momentum, with decoupled weight decay (Chen et al. 2023)::

        c <- beta1 * m + (1 - beta1) * g
        p <- p - lr * (sign(c) + weight_decay * p)
        m <- beta2 * m + (1 - beta2) * g

    torch.optim has no Lion: the class takes lion-pytorch's arguments and defaults,
    ``lr=1e-4``, ``betas=(0.9, 0.99)``, ``weight_decay=0``, and ``maximize=False``. Chain:
    `maximize`, `scale_by_lion`, `add_decayed_weights`, `scale_by_learning_rate`.
    """
    return _with_weight_decay(scale_by_lion(betas), lr, weight_decay, True, maximize)


def adabelief(lr=1e-3, betas=(0.9, 0.999), eps=1e-16, weight_decay=0.0, decoupled_weight_decay=True,
              maximize=False) -> chain:
    r"""AdaBelief (Zhuang et al. 2020): Adam scaled by the gradient's deviation from its EMA::

        g <- g + weight_decay * p             (decoupled_weight_decay=False: L2)
        m <- beta1 * m + (1 - beta1) * g
        s <- beta2 * s + (1 - beta2) * (g - m)^2 + eps
        p <- p - lr * weight_decay * p - lr * (m / (1 - beta1^t)) / (sqrt(s / (1 - beta2^t)) + eps)

    (the decay line with ``decoupled_weight_decay=True``, the default). torch.optim has no
    AdaBelief: the arguments and defaults are pytorch-optimizer's (the authors'
    adabelief-pytorch 0.2's) under torch's names, ``lr=1e-3``, ``betas=(0.9, 0.999)``,
    ``eps=1e-16``, ``weight_decay=0``, ``decoupled_weight_decay=True`` (their
    ``weight_decouple``), ``maximize=False``; their ``rectify`` and ``ams_bound`` options
    are not taken. Chain: `maximize`, [`add_decayed_weights`], `scale_by_belief`,
    [`add_decayed_weights`], `scale_by_learning_rate`.
    """
    return _with_weight_decay(scale_by_belief(betas, eps), lr, weight_decay, decoupled_weight_decay, maximize)


def adopt(lr=1e-3, betas=(0.9, 0.9999), eps=1e-6, weight_decay=0.0, decoupled_weight_decay=False,
          clip_lambda=fourth_root, maximize=False) -> chain:
    r"""ADOPT (Taniguchi et al. 2024): the gradient normalized by the previous second
    moment, clipped, then averaged (`scale_by_adopt` has the math)::

        g <- g + weight_decay * p             (L2; decoupled_weight_decay: p <- p - lr * weight_decay * p)
        t = 1:  v <- g^2, no step
        m <- beta1 * m + (1 - beta1) * clip(g / max(sqrt(v), eps), clip_lambda(t - 1))
        p <- p - lr * m
        v <- beta2 * v + (1 - beta2) * g^2

    torch.optim has no ADOPT: the arguments and defaults are the authors' (and
    pytorch-optimizer's) under torch's names, ``lr=1e-3``, ``betas=(0.9, 0.9999)``,
    ``eps=1e-6``, ``weight_decay=0``, ``decoupled_weight_decay=False`` (their
    ``decouple``/``weight_decouple``), ``clip_lambda=fourth_root`` (``t ** 0.25`` of the
    paper's step ``t``, one less than ours; None: no clipping), ``maximize=False``. Chain:
    `maximize`, [`add_decayed_weights`], `scale_by_adopt`, [`add_decayed_weights`],
    `scale_by_learning_rate`.
    """
    return _with_weight_decay(scale_by_adopt(betas, eps, clip_lambda), lr, weight_decay, decoupled_weight_decay,
                              maximize)


def ademamix(lr=1e-3, betas=(0.9, 0.999, 0.9999), alpha=5.0, t_alpha_beta3=None, eps=1e-8, weight_decay=0.0,
             decoupled_weight_decay=True, maximize=False) -> chain:
    r"""AdEMAMix (Pagliardini et al. 2024): Adam plus a slow, alpha-weighted EMA of the
    gradient (`scale_by_ademamix` has the math and the warm-ups)::

        m1 <- beta1 * m1 + (1 - beta1) * g,   m2 <- beta3_t * m2 + (1 - beta3_t) * g
        v <- beta2 * v + (1 - beta2) * g^2
        p <- p - lr * weight_decay * p - lr * (m1 / (1 - beta1^t) + alpha_t * m2) / (sqrt(v / (1 - beta2^t)) + eps)

    (the decay line with ``decoupled_weight_decay=True``, the default, as in the paper;
    False: L2). torch.optim has no AdEMAMix: the arguments and defaults are
    pytorch-optimizer's, ``lr=1e-3``, ``betas=(0.9, 0.999, 0.9999)`` (beta1, beta2,
    beta3), ``alpha=5.0``, ``t_alpha_beta3=None`` (the warm-up length of alpha and beta3;
    None: none), ``eps=1e-8``, ``weight_decay=0``, ``maximize=False``; but
    ``decoupled_weight_decay=True`` (theirs: ``weight_decouple=False``). Chain: `maximize`,
    [`add_decayed_weights`], `scale_by_ademamix`, [`add_decayed_weights`],
    `scale_by_learning_rate`.
    """
    return _with_weight_decay(scale_by_ademamix(betas, alpha, t_alpha_beta3, eps), lr, weight_decay,
                              decoupled_weight_decay, maximize)


def mars(lr=3e-3, betas=(0.95, 0.99), gamma=0.025, eps=1e-8, weight_decay=0.0, maximize=False) -> chain:
    r"""MARS-AdamW (Yuan et al. 2024), approximate form: AdamW on a variance-reduced
    gradient, clipped to norm 1 per tensor (`scale_by_mars` has the math)::

        c <- g + gamma * beta1 / (1 - beta1) * (g - g_prev),   c <- c / max(1, ||c||_2)  (per tensor)
        m <- beta1 * m + (1 - beta1) * c,   v <- beta2 * v + (1 - beta2) * c^2
        p <- p - lr * weight_decay * p - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

    torch.optim has no MARS: the arguments and defaults are the authors' (and
    pytorch-optimizer's), ``lr=3e-3``, ``betas=(0.95, 0.99)``, ``gamma=0.025``,
    ``eps=1e-8``, ``weight_decay=0`` (decoupled), ``maximize=False``. Every parameter is
    stepped by MARS (their ``optimize_1d=True``; their default steps vectors with AdamW:
    `partition` does that). Chain: `maximize`, `scale_by_mars`, `add_decayed_weights`,
    `scale_by_learning_rate`.
    """
    return _with_weight_decay(scale_by_mars(betas, gamma, eps), lr, weight_decay, True, maximize)


def adafactor(lr=1e-2, beta2_decay=-0.8, eps=ADAFACTOR_EPS, d=1.0, weight_decay=0.0, maximize=False) -> chain:
    r"""Adafactor: factored second moments, update clipping and a step size relative to the
    parameters' scale, with decoupled weight decay (Shazeer & Stern 2018; torch.optim.Adafactor's
    form)::

        beta2_t = 1 - t^beta2_decay
        R <- beta2_t R + (1 - beta2_t) * row means of g^2,  C <- the same over columns
        V = R C / mean(R)          (a matrix's last two dims; V <- EMA of g^2 for vectors)
        U = g / max(sqrt(V), eps1),  U <- U / max(1, RMS(U) / d)
        p <- p - lr * weight_decay * p - max(eps2, RMS(p)) * min(lr, 1 / sqrt(t)) * U

    Arguments (torch.optim.Adafactor's defaults): ``lr=1e-2`` (caps the relative step and
    scales the weight decay), ``beta2_decay=-0.8``, ``eps=(None, 1e-3)`` (eps1 None: the
    dtype's epsilon), ``d=1.0``, ``weight_decay=0``, ``maximize=False``. Chain:
    `maximize`, `scale_by_factored_rms`, `clip_by_block_rms`,
    `scale_by_relative_step_size`, `add_decayed_weights`, `scale_by_learning_rate`.
    """
    preconditioner = chain(
        scale_by_factored_rms(beta2_decay, eps), clip_by_block_rms(d), scale_by_relative_step_size(lr, eps)
    )
    return _with_weight_decay(preconditioner, lr, weight_decay, True, maximize)


def muon(lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True, ns_coefficients=NS_COEFFICIENTS, eps=1e-7,
         ns_steps=5, adjust_lr_fn=None, maximize=False, ns_dtype=torch.bfloat16) -> chain:
    r"""Muon, Nesterov momentum orthogonalized by Newton-Schulz and scaled by the matrix's
    shape, with decoupled weight decay; for 2-D parameters (Jordan et al. 2024)::

        B <- momentum * B + (1 - momentum) * g,  U = lerp(g, B, momentum) (nesterov) or B
        X = U / max(||U||_F, eps),  ns_steps times: X <- a X + (b A + c A^2) X,  A = X X^T
        p <- p - lr * weight_decay * p - lr * s * X
        s = sqrt(max(1, rows / cols)) ("original"), 0.2 sqrt(max(rows, cols)) ("match_rms_adamw")

    Arguments (torch.optim.Muon's defaults): ``lr=1e-3``, ``weight_decay=0.1``,
    ``momentum=0.95``, ``nesterov=True``, ``ns_coefficients=(3.4445, -4.775, 2.0315)``
    ((a, b, c)), ``eps=1e-7``, ``ns_steps=5``, ``adjust_lr_fn=None`` ("original"); and
    optimlab's ``maximize=False`` and ``ns_dtype=torch.bfloat16`` (the dtype of the
    iteration). Chain: `maximize`, `nesterov_ema`, `orthogonalize_by_newton_schulz`,
    `scale_by_shape`, `add_decayed_weights`, `scale_by_learning_rate`.
    """
    orthogonalized = chain(
        nesterov_ema(momentum, nesterov),
        orthogonalize_by_newton_schulz(ns_coefficients, eps, ns_steps, ns_dtype),
        scale_by_shape(adjust_lr_fn),
    )
    return _with_weight_decay(orthogonalized, lr, weight_decay, True, maximize)


def muon_or_adamw(param) -> str:
    """Muon for matrices and convolution filters (flattened), AdamW for the rest (biases,
    norms' scales, ...)."""
    return "muon" if param.ndim >= 2 else "adamw"


def muon_with_adamw(lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True, ns_coefficients=NS_COEFFICIENTS,
                    eps=1e-7, ns_steps=5, adjust_lr_fn=None, adamw_betas=(0.9, 0.999), adamw_eps=1e-8, maximize=False,
                    ns_dtype=torch.bfloat16) -> partition:
    r"""Muon (see `muon`) for the parameters of 2 or more dimensions (a convolution's
    filters as ``out x in*kh*kw`` matrices) and AdamW (see `adamw`) for the others,
    with one learning rate and weight decay (``adjust_lr_fn="match_rms_adamw"`` makes one
    learning rate fit both). Arguments: `muon`'s, and AdamW's ``adamw_betas=(0.9, 0.999)``
    and ``adamw_eps=1e-8``, the group keys ``"adamw.betas"`` and ``"adamw.eps"``. A
    `partition` of the two chains by `muon_or_adamw`.
    """
    return partition(
        {
            "muon": muon(lr, weight_decay, momentum, nesterov, ns_coefficients, eps, ns_steps, adjust_lr_fn,
                         maximize, ns_dtype),
            "adamw": adamw(lr, adamw_betas, adamw_eps, weight_decay, maximize=maximize),
        },
        label=muon_or_adamw,
    )


def _execution(foreach: bool | None, differentiable: bool, fused: bool | None = None) -> dict[str, Any]:
    if differentiable:
        raise ValueError("differentiable=True is not supported: optimlab steps run without autograd")
    return {"foreach": foreach, "fused": fused}


@alias(sgd)
class SGD(Optimizer):
    __doc__ = sgd.__doc__

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False, foreach=None, differentiable=False, fused=None):
        transform = sgd(lr, momentum, dampening, weight_decay, nesterov, maximize)
        super().__init__(params, transform, **_execution(foreach, differentiable, fused))


@alias(ema_momentum)
class EMAMomentum(Optimizer):
    __doc__ = ema_momentum.__doc__

    def __init__(self, params, lr=1e-3, momentum=0.9, weight_decay=0, *, maximize=False, foreach=None, fused=None):
        super().__init__(params, ema_momentum(lr, momentum, weight_decay, maximize), foreach=foreach, fused=fused)


@alias(adagrad)
class Adagrad(Optimizer):
    __doc__ = adagrad.__doc__

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                 foreach=None, *, maximize=False, differentiable=False, fused=None):
        transform = adagrad(lr, lr_decay, weight_decay, initial_accumulator_value, eps, maximize)
        super().__init__(params, transform, **_execution(foreach, differentiable, fused))


@alias(adadelta)
class Adadelta(Optimizer):
    __doc__ = adadelta.__doc__

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *,
                 capturable=False, maximize=False, differentiable=False, fused=None):
        transform = adadelta(lr, rho, eps, weight_decay, maximize)
        super().__init__(params, transform, **_execution(foreach, differentiable, fused))


@alias(rmsprop)
class RMSprop(Optimizer):
    __doc__ = rmsprop.__doc__

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 capturable=False, foreach=None, maximize=False, differentiable=False, *, fused=None):
        transform = rmsprop(lr, alpha, eps, weight_decay, momentum, centered, maximize)
        super().__init__(params, transform, **_execution(foreach, differentiable, fused))


@alias(adam)
class Adam(Optimizer):
    __doc__ = adam.__doc__

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 foreach=None, maximize=False, capturable=False, differentiable=False, fused=None,
                 decoupled_weight_decay=False):
        transform = adam(lr, betas, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay)
        super().__init__(params, transform, **_execution(foreach, differentiable, fused))
        self.fixed_options = {"decoupled_weight_decay": decoupled_weight_decay}


@alias(adamw)
class AdamW(Optimizer):
    __doc__ = adamw.__doc__

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, capturable=False, differentiable=False, fused=None):
        transform = adamw(lr, betas, eps, weight_decay, amsgrad, maximize)
        super().__init__(params, transform, **_execution(foreach, differentiable, fused))
        self.fixed_options = {"decoupled_weight_decay": True}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # As torch.optim.AdamW: any checkpoint, Adam's with L2 decay too, loads decoupled.
        groups = [{**group, "decoupled_weight_decay": True} for group in state_dict["param_groups"]]
        super().load_state_dict({**state_dict, "param_groups": groups})


@alias(adamax)
class Adamax(Optimizer):
    __doc__ = adamax.__doc__

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, foreach=None, *,
                 maximize=False, differentiable=False, capturable=False, fused=None):
        transform = adamax(lr, betas, eps, weight_decay, maximize)
        super().__init__(params, transform, **_execution(foreach, differentiable, fused))


@alias(nadam)
class NAdam(Optimizer):
    __doc__ = nadam.__doc__

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None):
        transform = nadam(lr, betas, eps, weight_decay, momentum_decay, decoupled_weight_decay, maximize)
        super().__init__(params, transform, **_execution(foreach, differentiable, fused))
        self.fixed_options = {"decoupled_weight_decay": decoupled_weight_decay}


@alias(radam)
class RAdam(Optimizer):
    __doc__ = radam.__doc__

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None):
        transform = radam(lr, betas, eps, weight_decay, decoupled_weight_decay, maximize)
        super().__init__(params, transform, **_execution(foreach, differentiable, fused))
        self.fixed_options = {"decoupled_weight_decay": decoupled_weight_decay}


@alias(lion)
class Lion(Optimizer):
    __doc__ = lion.__doc__

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0, *, maximize=False, foreach=None,
                 fused=None):
        super().__init__(params, lion(lr, betas, weight_decay, maximize), foreach=foreach, fused=fused)


@alias(adabelief)
class AdaBelief(Optimizer):
    __doc__ = adabelief.__doc__

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-16, weight_decay=0, decoupled_weight_decay=True,
                 *, maximize=False, foreach=None, fused=None):
        transform = adabelief(lr, betas, eps, weight_decay, decoupled_weight_decay, maximize)
        super().__init__(params, transform, foreach=foreach, fused=fused)


@alias(adopt)
class ADOPT(Optimizer):
    __doc__ = adopt.__doc__

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.9999), eps=1e-6, weight_decay=0, decoupled_weight_decay=False,
                 clip_lambda=fourth_root, *, maximize=False, foreach=None, fused=None):
        transform = adopt(lr, betas, eps, weight_decay, decoupled_weight_decay, clip_lambda, maximize)
        super().__init__(params, transform, foreach=foreach, fused=fused)


@alias(ademamix)
class AdEMAMix(Optimizer):
    __doc__ = ademamix.__doc__

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999, 0.9999), alpha=5.0, t_alpha_beta3=None, eps=1e-8,
                 weight_decay=0, decoupled_weight_decay=True, *, maximize=False, foreach=None, fused=None):
        transform = ademamix(lr, betas, alpha, t_alpha_beta3, eps, weight_decay, decoupled_weight_decay, maximize)
        super().__init__(params, transform, foreach=foreach, fused=fused)


@alias(mars)
class MARS(Optimizer):
    __doc__ = mars.__doc__

    def __init__(self, params, lr=3e-3, betas=(0.95, 0.99), gamma=0.025, eps=1e-8, weight_decay=0, *,
                 maximize=False, foreach=None, fused=None):
        super().__init__(params, mars(lr, betas, gamma, eps, weight_decay, maximize), foreach=foreach, fused=fused)


def _tensors_of(param_group) -> list:
    """The tensors of a param group, checked before `add_param_group` changes anything (a
    generator of them, which can be read once only, is stored in the group as a list)."""
    params = param_group.get("params") if isinstance(param_group, dict) else None
    if isinstance(params, torch.Tensor):
        params = [params]
    elif params is not None and not isinstance(params, (list, tuple, set)):
        params = param_group["params"] = list(params)
    return [p[1] if isinstance(p, tuple) else p for p in params or ()]  # (name, tensor) pairs too


@alias(adafactor)
class Adafactor(Optimizer):
    __doc__ = adafactor.__doc__ + """

    Complex parameters raise ValueError, in the constructor and in add_param_group, before
    anything changes (torch.optim.Adafactor raises RuntimeError at its first step)."""

    def __init__(self, params, lr=1e-2, beta2_decay=-0.8, eps=ADAFACTOR_EPS, d=1.0, weight_decay=0.0, *,
                 foreach=None, maximize=False, fused=None):
        transform = adafactor(lr, beta2_decay, eps, d, weight_decay, maximize)
        super().__init__(params, transform, foreach=foreach, fused=fused)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        check_real(_tensors_of(param_group))
        super().add_param_group(param_group)


@alias(muon)
class Muon(Optimizer):
    __doc__ = muon.__doc__ + """

    Every parameter must be a real matrix: any other raises ValueError, as in
    torch.optim.Muon (`MuonWithAdamW` steps the others with AdamW)."""

    torch_state_names = {"ema": "momentum_buffer"}

    def __init__(self, params, lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
                 ns_coefficients=NS_COEFFICIENTS, eps=1e-7, ns_steps=5, adjust_lr_fn=None, *, maximize=False,
                 ns_dtype=torch.bfloat16, foreach=None, fused=None):
        transform = muon(lr, weight_decay, momentum, nesterov, ns_coefficients, eps, ns_steps, adjust_lr_fn,
                         maximize, ns_dtype)
        super().__init__(params, transform, foreach=foreach, fused=fused)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        # Checked before anything changes (torch.optim.Muon checks after building its groups).
        check_matrices(_tensors_of(param_group))
        super().add_param_group(param_group)


@alias(muon_with_adamw)
class MuonWithAdamW(Optimizer):
    __doc__ = muon_with_adamw.__doc__
    # Given matrices only it is torch.optim.Muon, whose checkpoints it takes.
    torch_state_names = Muon.torch_state_names

    def __init__(self, params, lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
                 ns_coefficients=NS_COEFFICIENTS, eps=1e-7, ns_steps=5, adjust_lr_fn=None, *,
                 adamw_betas=(0.9, 0.999), adamw_eps=1e-8, maximize=False, ns_dtype=torch.bfloat16, foreach=None,
                 fused=None):
        transform = muon_with_adamw(lr, weight_decay, momentum, nesterov, ns_coefficients, eps, ns_steps,
                                    adjust_lr_fn, adamw_betas, adamw_eps, maximize, ns_dtype)
        super().__init__(params, transform, foreach=foreach, fused=fused)


def soap(lr=3e-3, betas=(0.95, 0.95), shampoo_beta=None, eps=1e-8, weight_decay=0.01, precondition_frequency=10,
         max_precondition_dim=10000, precondition_1d=False, maximize=False) -> chain:
    r"""SOAP (Vyas et al. 2024): Adam in the eigenbasis of Shampoo's preconditioner, with
    decoupled weight decay (`scale_by_soap` has the math)::

        L <- shampoo_beta L + (1 - shampoo_beta) G G^T,  R <- ... G^T G,  Q_L, Q_R their eigenbases
        M <- beta1 M + (1 - beta1) G,  V <- beta2 V + (1 - beta2) (Q_L^T G Q_R)^2
        p <- p - lr * weight_decay * p
               - lr * sqrt(1 - beta2^k) / (1 - beta1^k) * Q_L [(Q_L^T M Q_R) / (sqrt(V) + eps)] Q_R^T

    with k = t - 1: the first step only gathers L and R. Every ``precondition_frequency``
    steps Q_L, Q_R are refreshed by a power iteration and QR.
    Arguments (the authors' and pytorch-optimizer's defaults): ``lr=3e-3``,
    ``betas=(0.95, 0.95)``, ``shampoo_beta=None`` (beta2), ``eps=1e-8``,
    ``weight_decay=0.01``, ``precondition_frequency=10``, ``max_precondition_dim=10000``
    (a longer side keeps the identity), ``precondition_1d=False`` (vectors get plain
    Adam), ``maximize=False``. Chain: `maximize`, `scale_by_soap`, `add_decayed_weights`,
    `scale_by_learning_rate`.
    """
    preconditioner = scale_by_soap(betas, shampoo_beta, eps, precondition_frequency, max_precondition_dim,
                                   precondition_1d)
    return _with_weight_decay(preconditioner, lr, weight_decay, True, maximize)


@alias(soap)
class SOAP(Optimizer):
    __doc__ = soap.__doc__

    def __init__(self, params, lr=3e-3, betas=(0.95, 0.95), shampoo_beta=None, eps=1e-8, weight_decay=0.01,
                 precondition_frequency=10, max_precondition_dim=10000, precondition_1d=False, *, maximize=False,
                 foreach=None, fused=None):
        transform = soap(lr, betas, shampoo_beta, eps, weight_decay, precondition_frequency, max_precondition_dim,
                         precondition_1d, maximize)
        super().__init__(params, transform, foreach=foreach, fused=fused)


def shampoo(lr=1e-3, betas=(0.9, 0.999), eps=1e-12, weight_decay=0.0, momentum=0.0, nesterov=False,
            grafting_beta2=None, grafting_eps=1e-8, precondition_frequency=1, start_preconditioning_step=None,
            max_preconditioner_dim=1024, precondition_1d=False, use_bias_correction=True,
            decoupled_weight_decay=True, maximize=False) -> chain:
    r"""Shampoo (Gupta et al. 2018; Anil et al. 2020) with Adam grafting, as Meta's Distributed
    Shampoo (Shi et al. 2023, AlgoPerf's winning submission) defines it
    (`scale_by_shampoo` has the math)::

        g <- g + weight_decay * p                          (decoupled_weight_decay=False: L2)
        L <- beta2 L + (1 - beta2) G G^T,  R <- ... G^T G  (sums when beta2 = 1)
        M <- beta1 M + (1 - beta1) G,  V <- grafting_beta2 V + (1 - grafting_beta2) G^2
        A = M^ / (sqrt(V^) + grafting_eps)                 (^: bias-corrected)
        D = (L^ + eps I)^(-1/4) M^ (R^ + eps I)^(-1/4)     (roots every precondition_frequency steps)
        d <- A before start_preconditioning_step, else D * ||A|| / ||D||   (per tensor)
        d <- d + weight_decay * p                          (decoupled, the default)
        b <- momentum * b + d;  d <- d + momentum * b if nesterov else b
        p <- p - lr * d

    Arguments (Meta's defaults with its README's Adam-grafting recipe): ``lr=1e-3``,
    ``betas=(0.9, 0.999)`` (beta2 = 1: Shampoo's sums), ``eps=1e-12``, ``weight_decay=0``,
    ``momentum=0`` (heavy-ball on the grafted direction; 0 keeps no buffer),
    ``nesterov=False``, ``grafting_beta2=None`` (beta2), ``grafting_eps=1e-8``,
    ``precondition_frequency=1``, ``start_preconditioning_step=None``
    (``precondition_frequency``), ``max_preconditioner_dim=1024`` (a longer side keeps the
    identity), ``precondition_1d=False`` (vectors get Adam), ``use_bias_correction=True``,
    ``decoupled_weight_decay=True``, ``maximize=False``. Chain: `maximize`,
    `scale_by_shampoo` and `add_decayed_weights` (in the other order for L2), `trace`,
    `scale_by_learning_rate`.
    """
    preconditioner = scale_by_shampoo(betas, eps, grafting_beta2, grafting_eps, precondition_frequency,
                                      start_preconditioning_step, max_preconditioner_dim, precondition_1d,
                                      use_bias_correction)
    decay = add_decayed_weights(weight_decay)
    steps = (preconditioner, decay) if decoupled_weight_decay else (decay, preconditioner)
    return chain(maximize_(maximize), *steps, trace(momentum, 0.0, nesterov), scale_by_learning_rate(lr))


@alias(shampoo)
class Shampoo(Optimizer):
    __doc__ = shampoo.__doc__

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-12, weight_decay=0.0, momentum=0.0,
                 nesterov=False, grafting_beta2=None, grafting_eps=1e-8, precondition_frequency=1,
                 start_preconditioning_step=None, max_preconditioner_dim=1024, precondition_1d=False,
                 use_bias_correction=True, decoupled_weight_decay=True, *, maximize=False, foreach=None,
                 fused=None):
        transform = shampoo(lr, betas, eps, weight_decay, momentum, nesterov, grafting_beta2, grafting_eps,
                            precondition_frequency, start_preconditioning_step, max_preconditioner_dim,
                            precondition_1d, use_bias_correction, decoupled_weight_decay, maximize)
        super().__init__(params, transform, foreach=foreach, fused=fused)


def psgd_kron(lr=1e-3, momentum=0.9, weight_decay=0.0, precond_update_prob=None, precond_lr=0.1,
              precond_init_scale=1.0, max_size_triangular=8192, min_ndim_triangular=2, memory_save_mode=None,
              momentum_into_precond_update=True, seed=0, maximize=False) -> chain:
    r"""PSGD-Kron (Li 2015, 2018; kron_torch, pytorch-optimizer's ``Kron``): momentum
    preconditioned by a Kronecker-factored Q fitted on its Lie group, clipped to RMS 1.1, with
    decoupled weight decay (`scale_by_kron` has the math)::

        m <- momentum m + (1 - momentum) g,  h = m / (1 - momentum^t)
        when the preconditioner updates (probability precond_update_prob), v ~ N(0, I):
            A = Q h,  B = Q^-T v,  Q_i <- Q_i - precond_lr triu(A_i A_i^T - B_i B_i^T) Q_i / ||A_i A_i^T + B_i B_i^T||
        u = Q^T Q h,  u <- u min(1, 1.1 / (rms(u) + 1e-6))
        p <- p - lr (u + weight_decay p)

    with Q = Q_1 x ... x Q_d, one factor per dimension (triangular, or diagonal).
    Arguments (pytorch-optimizer's ``Kron`` defaults): ``lr=1e-3``, ``momentum=0.9``,
    ``weight_decay=0``, ``precond_update_prob=None`` (1 for 500 steps, then decaying to 0.03),
    ``precond_lr=0.1``, ``precond_init_scale=1.0``, ``max_size_triangular=8192`` (a longer
    side is diagonal), ``min_ndim_triangular=2`` (vectors are diagonal),
    ``memory_save_mode=None`` (or ``"one_diag"``, ``"smart_one_diag"``, ``"all_diag"``),
    ``momentum_into_precond_update=True`` (fit Q to h, else to g), ``seed=0`` (of the probes),
    ``maximize=False``. Chain: `maximize`, `scale_by_kron`, `add_decayed_weights`,
    `scale_by_learning_rate`.
    """
    preconditioner = scale_by_kron(momentum, precond_lr, precond_init_scale, precond_update_prob, max_size_triangular,
                                   min_ndim_triangular, memory_save_mode, momentum_into_precond_update, seed)
    return _with_weight_decay(preconditioner, lr, weight_decay, True, maximize)


@alias(psgd_kron)
class PSGDKron(Optimizer):
    __doc__ = psgd_kron.__doc__

    def __init__(self, params, lr=1e-3, momentum=0.9, weight_decay=0.0, precond_update_prob=None, precond_lr=0.1,
                 precond_init_scale=1.0, max_size_triangular=8192, min_ndim_triangular=2, memory_save_mode=None,
                 momentum_into_precond_update=True, seed=0, *, maximize=False, foreach=None, fused=None):
        transform = psgd_kron(lr, momentum, weight_decay, precond_update_prob, precond_lr, precond_init_scale,
                              max_size_triangular, min_ndim_triangular, memory_save_mode,
                              momentum_into_precond_update, seed, maximize)
        super().__init__(params, transform, foreach=foreach, fused=fused)


def swats(lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, maximize=False) -> chain:
    r"""SWATS (Keskar & Socher 2017): Adam, switching itself to SGD with momentum at the
    learning rate it estimates (`scale_by_swats` has the math)::

        g <- g + weight_decay * p                       (L2)
        Adam phase:  p <- p - lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)
        SGD phase:   b <- beta1 * b + g;  p <- p - (1 - beta1) * Lambda * b

    Arguments (pytorch-optimizer's ``SWATS`` defaults): ``lr=1e-3``, ``betas=(0.9, 0.999)``,
    ``eps=1e-6``, ``weight_decay=0``, ``maximize=False``. Chain: `maximize`,
    [`add_decayed_weights`], `scale_by_swats`.
    """
    return chain(maximize_(maximize), add_decayed_weights(weight_decay), scale_by_swats(lr, betas, eps))


@alias(swats)
class SWATS(Optimizer):
    __doc__ = swats.__doc__

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0, *, maximize=False,
                 foreach=None, fused=None):
        super().__init__(params, swats(lr, betas, eps, weight_decay, maximize), foreach=foreach, fused=fused)


def schedule_free_sgd(lr=1.0, momentum=0.9, weight_decay=0.0, warmup_steps=0, r=0.0, weight_lr_power=2.0):
    r"""Schedule-Free SGD (Defazio et al. 2024; `schedule_free` has the math) on
    :math:`d = g + \lambda y` (L2 at the train-mode parameters :math:`y`)::

        y <- (1 - c) y + c z + lr_t (momentum (1 - c) - 1) d;   z <- z - lr_t d

    Arguments (``schedulefree.SGDScheduleFree`` 1.4's defaults): ``lr=1.0``, ``momentum=0.9``,
    ``weight_decay=0``, ``warmup_steps=0``, ``r=0``, ``weight_lr_power=2``. Chain:
    `schedule_free` around `add_decayed_weights`.
    """
    return schedule_free(add_decayed_weights(weight_decay), lr, warmup_steps, r, weight_lr_power, momentum=momentum)


def schedule_free_adamw(lr=0.0025, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, warmup_steps=0, r=0.0,
                        weight_lr_power=2.0):
    r"""Schedule-Free AdamW (Defazio et al. 2024) on
    :math:`d = g / (\sqrt{v_t / (1-\beta_2^t)} + \epsilon) + \lambda y`, interpolating with
    :math:`\beta_1`.

    Arguments (``schedulefree.AdamWScheduleFree`` 1.4's defaults): ``lr=0.0025``,
    ``betas=(0.9, 0.999)``, ``eps=1e-8``, ``weight_decay=0``, ``warmup_steps=0``, ``r=0``,
    ``weight_lr_power=2``. Chain: `schedule_free` around `scale_by_bias_corrected_rms`,
    `add_decayed_weights`.
    """
    return schedule_free(chain(scale_by_bias_corrected_rms(betas, eps), add_decayed_weights(weight_decay)),
                         lr, warmup_steps, r, weight_lr_power)


class _ScheduleFree(Optimizer):
    """``train()`` before training steps, ``eval()`` before evaluating (and saving), as in
    the ``schedulefree`` package: the parameters hold y in train mode and x in eval mode.

    BatchNorm caveat: running statistics gathered at y are not those of x; before
    evaluating, run a few training batches through the model (``model.train()``, no
    gradients) with the optimizer in eval mode to recompute them.
    """

    @torch.no_grad()
    def _set_mode(self, train: bool) -> None:
        for group in self.param_groups:
            if group["train_mode"] == train:
                continue
            beta = interpolation(group)
            weight = 1 - beta if train else 1 - 1 / beta  # y = (1-b) z + b x  <->  x
            for p in group["params"]:
                if "z" in self.state.get(p, {}):  # .get: no empty state for a parameter never stepped
                    p.lerp_(self.state[p]["z"], weight)
            group["train_mode"] = train

    def train(self) -> None:
        """Parameters to y, the point where gradients are taken."""
        self._set_mode(True)

    def eval(self) -> None:
        """Parameters to x, the averaged point to evaluate and save."""
        self._set_mode(False)


@alias(schedule_free_sgd)
class ScheduleFreeSGD(_ScheduleFree):
    __doc__ = schedule_free_sgd.__doc__ + _ScheduleFree.__doc__

    def __init__(self, params, lr=1.0, momentum=0.9, weight_decay=0, warmup_steps=0, r=0.0, weight_lr_power=2,
                 foreach=None, *, fused=None):
        transform = schedule_free_sgd(lr, momentum, weight_decay, warmup_steps, r, weight_lr_power)
        super().__init__(params, transform, foreach=foreach, fused=fused)


@alias(schedule_free_adamw)
class ScheduleFreeAdamW(_ScheduleFree):
    __doc__ = schedule_free_adamw.__doc__ + _ScheduleFree.__doc__

    def __init__(self, params, lr=0.0025, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, warmup_steps=0, r=0.0,
                 weight_lr_power=2.0, foreach=None, *, fused=None):
        transform = schedule_free_adamw(lr, betas, eps, weight_decay, warmup_steps, r, weight_lr_power)
        super().__init__(params, transform, foreach=foreach, fused=fused)


def prodigy(lr=1.0, betas=(0.9, 0.999), beta3=None, eps=1e-8, weight_decay=0.0, decouple=True,
            use_bias_correction=False, safeguard_warmup=False, d0=1e-6, d_coef=1.0, growth_rate=float("inf"),
            slice_p=1) -> chain:
    r"""Prodigy (Mishchenko & Defazio 2024): Adam whose learning rate ``d * lr`` estimates
    itself (`scale_by_prodigy` has the math); ``lr=1.0`` means no tuning.

    Arguments (``prodigyopt.Prodigy`` 1.1's defaults): ``lr=1.0``, ``betas=(0.9, 0.999)``,
    ``beta3=None`` (sqrt(beta2)), ``eps=1e-8``, ``weight_decay=0``, ``decouple=True``,
    ``use_bias_correction=False``, ``safeguard_warmup=False``, ``d0=1e-6``, ``d_coef=1.0``,
    ``growth_rate=inf``, ``slice_p=1``. Chain: `scale_by_prodigy`.
    """
    return chain(scale_by_prodigy(lr, betas, beta3, eps, weight_decay, decouple, use_bias_correction,
                                  safeguard_warmup, d0, d_coef, growth_rate, slice_p))


@alias(prodigy)
class Prodigy(Optimizer):
    __doc__ = prodigy.__doc__

    def __init__(self, params, lr=1.0, betas=(0.9, 0.999), beta3=None, eps=1e-8, weight_decay=0, decouple=True,
                 use_bias_correction=False, safeguard_warmup=False, d0=1e-6, d_coef=1.0, growth_rate=float("inf"),
                 fsdp_in_use=False, slice_p=1, *, foreach=None, fused=None):
        if fsdp_in_use:
            raise ValueError("fsdp_in_use must be False, got True: optimlab sums d's estimate per param group")
        transform = prodigy(lr, betas, beta3, eps, weight_decay, decouple, use_bias_correction, safeguard_warmup,
                            d0, d_coef, growth_rate, slice_p)
        super().__init__(params, transform, foreach=foreach, fused=fused)


def dadapt_adam(lr=1.0, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, log_every=0, decouple=False,
                use_bias_correction=False, d0=1e-6, growth_rate=float("inf")) -> chain:
    r"""D-Adaptation Adam (Defazio & Mishchenko 2023): Adam whose learning rate ``d * lr``
    estimates itself (`scale_by_dadapt_adam` has the math); ``lr=1.0`` means no tuning.

    Arguments (``dadaptation.DAdaptAdam`` 3.2's defaults): ``lr=1.0``, ``betas=(0.9, 0.999)``,
    ``eps=1e-8``, ``weight_decay=0``, ``log_every=0``, ``decouple=False``,
    ``use_bias_correction=False``, ``d0=1e-6``, ``growth_rate=inf``. Chain: `scale_by_dadapt_adam`.
    """
    return chain(scale_by_dadapt_adam(lr, betas, eps, weight_decay, log_every, decouple, use_bias_correction, d0,
                                      growth_rate))


@alias(dadapt_adam)
class DAdaptAdam(Optimizer):
    __doc__ = dadapt_adam.__doc__

    def __init__(self, params, lr=1.0, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, log_every=0, decouple=False,
                 use_bias_correction=False, d0=1e-6, growth_rate=float("inf"), fsdp_in_use=False, *, foreach=None,
                 fused=None):
        if fsdp_in_use:
            raise ValueError("fsdp_in_use must be False, got True: optimlab sums d's estimate per param group")
        transform = dadapt_adam(lr, betas, eps, weight_decay, log_every, decouple, use_bias_correction, d0,
                                growth_rate)
        super().__init__(params, transform, foreach=foreach, fused=fused)


def lamb(lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, maximize=False) -> chain:
    r"""LAMB (You et al. 2020, "Large Batch Optimization for Deep Learning: Training BERT in
    76 minutes", Algorithm 2): Adam's bias-corrected direction plus decoupled weight decay,
    scaled per tensor to the parameter's norm::

        m, v: Adam's moments;  r = (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
        u = r + weight_decay * p
        p <- p - lr * ||p|| / ||u|| * u        (per tensor; the ratio 1 where either norm is 0)

    (the paper's phi is the identity). Arguments (pytorch-optimizer 4.1's ``Lamb``
    defaults): ``lr=1e-3``, ``betas=(0.9, 0.999)``, ``eps=1e-6``, ``weight_decay=0``,
    ``maximize=False``. pytorch-optimizer's differs from the paper, which this follows:
    no bias correction but a step ``lr / (1 - beta1^t)``, its decay outside the trust
    ratio, ``||p||`` clamped at 10 and ``||u|| + eps`` in the ratio (docs/algorithms.md).
    Chain: `maximize`, `scale_by_adam`, `add_decayed_weights`, `scale_by_trust_ratio`,
    `scale_by_learning_rate`.
    """
    return chain(maximize_(maximize), scale_by_adam(betas, eps), add_decayed_weights(weight_decay),
                 scale_by_trust_ratio(), scale_by_learning_rate(lr))


@alias(lamb)
class LAMB(Optimizer):
    __doc__ = lamb.__doc__

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0, *, maximize=False,
                 foreach=None, fused=None):
        super().__init__(params, lamb(lr, betas, eps, weight_decay, maximize), foreach=foreach, fused=fused)


def lars(lr=1e-3, momentum=0.9, dampening=0.0, weight_decay=0.0, trust_coefficient=1e-3, nesterov=False,
         maximize=False) -> chain:
    r"""LARS (You, Gitman & Ginsburg 2017, "Large Batch Training of Convolutional Networks",
    Algorithm 1): SGD with momentum on a local learning rate per tensor::

        local_lr = trust_coefficient * ||p|| / (||g|| + weight_decay * ||p||)   (1 where ||p|| or that is 0)
        v <- momentum * v + (1 - dampening) * lr * local_lr * (g + weight_decay * p)   (v_1 = lr * local_lr * (...))
        p <- p - v                      (nesterov: p <- p - lr * local_lr * (g + weight_decay * p) - momentum * v)

    Arguments (pytorch-optimizer 4.1's ``LARS`` names and defaults): ``lr=1e-3``,
    ``momentum=0.9``, ``dampening=0``, ``weight_decay=0``, ``trust_coefficient=1e-3``
    (the paper's eta), ``nesterov=False``, ``maximize=False``. As in the paper, and not
    as in pytorch-optimizer, every tensor is scaled (biases too) and the learning rate is
    inside the momentum (the same steps at a constant ``lr``; docs/algorithms.md).
    Chain: `maximize`, `scale_by_lars`, `scale_by_learning_rate`, `trace`.
    """
    return chain(maximize_(maximize), scale_by_lars(trust_coefficient, weight_decay), scale_by_learning_rate(lr),
                 trace(momentum, dampening, nesterov))


@alias(lars)
class LARS(Optimizer):
    __doc__ = lars.__doc__

    def __init__(self, params, lr=1e-3, weight_decay=0, momentum=0.9, dampening=0, trust_coefficient=1e-3,
                 nesterov=False, *, maximize=False, foreach=None, fused=None):
        transform = lars(lr, momentum, dampening, weight_decay, trust_coefficient, nesterov, maximize)
        super().__init__(params, transform, foreach=foreach, fused=fused)


def cautious_adamw(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, maximize=False) -> chain:
    r"""Cautious AdamW (Liang et al. 2024, "Cautious Optimizers", C-AdamW): AdamW whose
    Adam direction keeps only the components that agree in sign with the gradient::

        m, v: Adam's moments;  r = (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
        mask = [r * g > 0];  r <- r * mask * numel / (sum(mask) + 1)     (per tensor)
        p <- p - lr * (r + weight_decay * p)

    Arguments (torch.optim.AdamW's defaults): ``lr=1e-3``, ``betas=(0.9, 0.999)``,
    ``eps=1e-8``, ``weight_decay=1e-2``, ``maximize=False``. Chain: `maximize`,
    `cautious` around `scale_by_adam`, `add_decayed_weights`, `scale_by_learning_rate`.
    """
    return _with_weight_decay(cautious(scale_by_adam(betas, eps)), lr, weight_decay, True, maximize)


@alias(cautious_adamw)
class CautiousAdamW(Optimizer):
    __doc__ = cautious_adamw.__doc__

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, *, maximize=False,
                 foreach=None, fused=None):
        super().__init__(params, cautious_adamw(lr, betas, eps, weight_decay, maximize), foreach=foreach,
                         fused=fused)


def cautious_lion(lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, maximize=False) -> chain:
    r"""Cautious Lion (Liang et al. 2024, C-Lion): Lion's sign step, kept only where it
    agrees in sign with the gradient::

        s = sign(beta1 * m + (1 - beta1) * g);  m <- beta2 * m + (1 - beta2) * g
        mask = [s * g > 0];  s <- s * mask * numel / (sum(mask) + 1)     (per tensor)
        p <- p - lr * (s + weight_decay * p)

    Arguments (`lion`'s): ``lr=1e-4``, ``betas=(0.9, 0.99)``, ``weight_decay=0``,
    ``maximize=False``. Chain: `maximize`, `cautious` around `scale_by_lion`,
    `add_decayed_weights`, `scale_by_learning_rate`.
    """
    return _with_weight_decay(cautious(scale_by_lion(betas)), lr, weight_decay, True, maximize)


@alias(cautious_lion)
class CautiousLion(Optimizer):
    __doc__ = cautious_lion.__doc__

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0, *, maximize=False, foreach=None,
                 fused=None):
        super().__init__(params, cautious_lion(lr, betas, weight_decay, maximize), foreach=foreach, fused=fused)
