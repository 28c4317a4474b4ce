"""The classic optimizers, each a chain of transforms, in two forms:

* lowercase functions (``adam(lr=...)``) return the `chain`, optax-style, to compose
  further or wrap with `optimlab.Optimizer`;
* torch.optim-style classes (``Adam(params, lr=...)``) take the same keyword names,
  positions and defaults as the torch.optim class of the same name.

torch.optim's execution options are accepted: ``foreach`` selects the multi-tensor or
for-loop path; ``fused=True`` the fused path (one compiled kernel per chain, used by
default where it pays; every alias takes it, see docs/performance.md); ``capturable``
is accepted and ignored; ``differentiable=True`` raises, since steps run without
autograd.
"""

from __future__ import annotations

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
from .transforms.adafactor import EPS as ADAFACTOR_EPS, check_real
from .transforms.muon import NS_COEFFICIENTS, check_matrices


def _with_weight_decay(
    preconditioner: Transform, lr, weight_decay: float, decoupled: bool, maximize: bool
) -> chain:
    """maximize -> [L2 decay] -> preconditioner -> [decoupled decay] -> -lr."""
    decay = add_decayed_weights(weight_decay)
    if decoupled:
        return chain(maximize_(maximize), preconditioner, decay, scale_by_learning_rate(lr))
    return chain(maximize_(maximize), decay, preconditioner, scale_by_learning_rate(lr))


def sgd(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False) -> chain:
    """(Stochastic) gradient descent with optional heavy-ball or Nesterov momentum."""
    return _with_weight_decay(trace(momentum, dampening, nesterov), lr, weight_decay, False, maximize)


def ema_momentum(lr=1e-3, momentum=0.9, weight_decay=0.0, maximize=False) -> chain:
    """SGD whose step follows an exponential moving average of the gradients."""
    return _with_weight_decay(ema(momentum), lr, weight_decay, False, maximize)


def adagrad(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10, maximize=False) -> chain:
    """Adagrad, with torch.optim's learning-rate decay."""
    return chain(
        maximize_(maximize),
        add_decayed_weights(weight_decay),
        scale_by_adagrad(initial_accumulator_value, eps),
        scale_by_inverse_time_decay(lr_decay),
        scale_by_learning_rate(lr),
    )


def adadelta(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False) -> chain:
    """Adadelta; ``lr`` only rescales the paper's learning-rate-free step."""
    return _with_weight_decay(scale_by_adadelta(rho, eps), lr, weight_decay, False, maximize)


def rmsprop(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, maximize=False) -> chain:
    """RMSprop, optionally centered, with optional momentum on the scaled step."""
    return chain(
        maximize_(maximize),
        add_decayed_weights(weight_decay),
        scale_by_rms(alpha, eps, centered),
        trace(momentum),
        scale_by_learning_rate(lr),
    )


def adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False, decoupled_weight_decay=False) -> chain:
    """Adam (AMSGrad with ``amsgrad=True``); L2 decay, or decoupled decay (AdamW)."""
    return _with_weight_decay(scale_by_adam(betas, eps, amsgrad), lr, weight_decay, decoupled_weight_decay, maximize)


def adamw(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, maximize=False) -> chain:
    """Adam with decoupled weight decay."""
    return adam(lr, betas, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay=True)


def adamax(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, maximize=False) -> chain:
    """AdaMax, Adam with the infinity norm."""
    return _with_weight_decay(scale_by_adamax(betas, eps), lr, weight_decay, False, maximize)


def nadam(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3, decoupled_weight_decay=False, maximize=False) -> chain:
    """NAdam, Adam with Nesterov momentum."""
    return _with_weight_decay(scale_by_nadam(betas, eps, momentum_decay), lr, weight_decay, decoupled_weight_decay, maximize)


def radam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False, maximize=False) -> chain:
    """RAdam, Adam with a rectified adaptive learning rate."""
    return _with_weight_decay(scale_by_radam(betas, eps), lr, weight_decay, decoupled_weight_decay, maximize)


def lion(lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, maximize=False) -> chain:
    """Lion, the sign of an interpolated momentum, with decoupled weight decay (torch.optim
    has no Lion: the class takes lion-pytorch's arguments and defaults)."""
    return _with_weight_decay(scale_by_lion(betas), lr, weight_decay, True, maximize)


def adafactor(lr=1e-2, beta2_decay=-0.8, eps=ADAFACTOR_EPS, d=1.0, weight_decay=0.0, maximize=False) -> chain:
    """Adafactor: factored second moments, update clipping and a step size relative to the
    parameters' scale, with decoupled weight decay (torch.optim.Adafactor's arguments and
    defaults; ``lr`` caps the relative step size and scales the weight decay)."""
    preconditioner = chain(
        scale_by_factored_rms(beta2_decay, eps), clip_by_block_rms(d), scale_by_relative_step_size(lr, eps)
    )
    return _with_weight_decay(preconditioner, lr, weight_decay, True, maximize)


def muon(lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True, ns_coefficients=NS_COEFFICIENTS, eps=1e-7,
         ns_steps=5, adjust_lr_fn=None, maximize=False, ns_dtype=torch.bfloat16) -> chain:
    """Muon, Nesterov momentum orthogonalized by Newton-Schulz and scaled by the matrix's
    shape, with decoupled weight decay; for 2-D parameters (torch.optim.Muon's arguments
    and defaults; ``maximize`` and ``ns_dtype`` are optimlab's)."""
    orthogonalized = chain(
        nesterov_ema(momentum, nesterov),
        orthogonalize_by_newton_schulz(ns_coefficients, eps, ns_steps, ns_dtype),
        scale_by_shape(adjust_lr_fn),
    )
    return _with_weight_decay(orthogonalized, lr, weight_decay, True, maximize)


def muon_or_adamw(param) -> str:
    """Muon for matrices, AdamW for the rest (biases, norms' scales, ...)."""
    return "muon" if param.ndim == 2 else "adamw"


def muon_with_adamw(lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True, ns_coefficients=NS_COEFFICIENTS,
                    eps=1e-7, ns_steps=5, adjust_lr_fn=None, adamw_betas=(0.9, 0.999), adamw_eps=1e-8, maximize=False,
                    ns_dtype=torch.bfloat16) -> partition:
    """Muon for the 2-D parameters and AdamW for the others, with one learning rate and
    weight decay (``adjust_lr_fn="match_rms_adamw"`` makes one learning rate fit both);
    AdamW's ``betas`` and ``eps`` are the group keys ``"adamw.betas"`` and ``"adamw.eps"``."""
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


class SGD(Optimizer):
    __doc__ = sgd.__doc__

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False, foreach=None, differentiable=False, fused=None):
        transform = sgd(lr, momentum, dampening, weight_decay, nesterov, maximize)
        super().__init__(params, transform, **_execution(foreach, differentiable, fused))


class EMAMomentum(Optimizer):
    __doc__ = ema_momentum.__doc__

    def __init__(self, params, lr=1e-3, momentum=0.9, weight_decay=0, *, maximize=False, foreach=None, fused=None):
        super().__init__(params, ema_momentum(lr, momentum, weight_decay, maximize), foreach=foreach, fused=fused)


class Adagrad(Optimizer):
    __doc__ = adagrad.__doc__

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                 foreach=None, *, maximize=False, differentiable=False, fused=None):
        transform = adagrad(lr, lr_decay, weight_decay, initial_accumulator_value, eps, maximize)
        super().__init__(params, transform, **_execution(foreach, differentiable, fused))


class Adadelta(Optimizer):
    __doc__ = adadelta.__doc__

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *,
                 capturable=False, maximize=False, differentiable=False, fused=None):
        transform = adadelta(lr, rho, eps, weight_decay, maximize)
        super().__init__(params, transform, **_execution(foreach, differentiable, fused))


class RMSprop(Optimizer):
    __doc__ = rmsprop.__doc__

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 capturable=False, foreach=None, maximize=False, differentiable=False, *, fused=None):
        transform = rmsprop(lr, alpha, eps, weight_decay, momentum, centered, maximize)
        super().__init__(params, transform, **_execution(foreach, differentiable, fused))


class Adam(Optimizer):
    __doc__ = adam.__doc__

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 foreach=None, maximize=False, capturable=False, differentiable=False, fused=None,
                 decoupled_weight_decay=False):
        transform = adam(lr, betas, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay)
        super().__init__(params, transform, **_execution(foreach, differentiable, fused))
        self.fixed_options = {"decoupled_weight_decay": decoupled_weight_decay}


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


class Adamax(Optimizer):
    __doc__ = adamax.__doc__

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, foreach=None, *,
                 maximize=False, differentiable=False, capturable=False, fused=None):
        transform = adamax(lr, betas, eps, weight_decay, maximize)
        super().__init__(params, transform, **_execution(foreach, differentiable, fused))


class NAdam(Optimizer):
    __doc__ = nadam.__doc__

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None):
        transform = nadam(lr, betas, eps, weight_decay, momentum_decay, decoupled_weight_decay, maximize)
        super().__init__(params, transform, **_execution(foreach, differentiable, fused))
        self.fixed_options = {"decoupled_weight_decay": decoupled_weight_decay}


class RAdam(Optimizer):
    __doc__ = radam.__doc__

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None):
        transform = radam(lr, betas, eps, weight_decay, decoupled_weight_decay, maximize)
        super().__init__(params, transform, **_execution(foreach, differentiable, fused))
        self.fixed_options = {"decoupled_weight_decay": decoupled_weight_decay}


class Lion(Optimizer):
    __doc__ = lion.__doc__

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0, *, maximize=False, foreach=None,
                 fused=None):
        super().__init__(params, lion(lr, betas, weight_decay, maximize), foreach=foreach, fused=fused)


def _tensors_of(param_group) -> list:
    """The tensors of a param group, checked before `add_param_group` changes anything (a
    generator of them, which can be read once only, is stored in the group as a list)."""
    params = param_group.get("params") if isinstance(param_group, dict) else None
    if isinstance(params, torch.Tensor):
        params = [params]
    elif params is not None and not isinstance(params, (list, tuple, set)):
        params = param_group["params"] = list(params)
    return [p[1] if isinstance(p, tuple) else p for p in params or ()]  # (name, tensor) pairs too


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
