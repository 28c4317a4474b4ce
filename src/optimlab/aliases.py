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

from .optimizer import Optimizer
from .transform import Transform, chain
from .transforms import (
    add_decayed_weights,
    ema,
    maximize as maximize_,
    scale_by_adadelta,
    scale_by_adagrad,
    scale_by_adam,
    scale_by_adamax,
    scale_by_inverse_time_decay,
    scale_by_learning_rate,
    scale_by_lion,
    scale_by_nadam,
    scale_by_radam,
    scale_by_rms,
    trace,
)


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


class AdamW(Optimizer):
    __doc__ = adamw.__doc__

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, capturable=False, differentiable=False, fused=None):
        transform = adamw(lr, betas, eps, weight_decay, amsgrad, maximize)
        super().__init__(params, transform, **_execution(foreach, differentiable, fused))


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


class RAdam(Optimizer):
    __doc__ = radam.__doc__

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None):
        transform = radam(lr, betas, eps, weight_decay, decoupled_weight_decay, maximize)
        super().__init__(params, transform, **_execution(foreach, differentiable, fused))


class Lion(Optimizer):
    __doc__ = lion.__doc__

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0, *, maximize=False, foreach=None,
                 fused=None):
        super().__init__(params, lion(lr, betas, weight_decay, maximize), foreach=foreach, fused=fused)
