"""Compose your own optimizer from gradient transformations, optax-style, and wrap it
as a real torch.optim.Optimizer. This chain is AdamW with global-norm gradient clipping:

    clip the gradient to norm <= 1  ->  Adam's scaling  ->  + 0.01 * p (decoupled decay)  ->  * -lr

Every hyperparameter of the chain lands in param_groups, so torch lr schedulers work.
"""

import optimlab
from _common import run


def make(params):
    transform = optimlab.chain(
        optimlab.clip_by_global_norm(1.0),
        optimlab.scale_by_adam(betas=(0.9, 0.999), eps=1e-8),
        optimlab.add_decayed_weights(0.01),
        optimlab.scale_by_learning_rate(1e-3),
    )
    return optimlab.Optimizer(params, transform)


run(make, "chain(clip_by_global_norm(1), scale_by_adam, add_decayed_weights(0.01), scale_by_learning_rate(1e-3))")
