"""Momentum as an exponential moving average of the gradients (seed 002's form):

    v <- b * v + (1 - b) * g;   p <- p - lr * v

It equals heavy-ball momentum with the learning rate multiplied by (1 - b), so it needs
a learning rate about 1/(1 - b) = 10x larger than momentum.py for the same step size.
optimlab.EMAMomentum has no torch.optim twin; its chain is
chain(maximize, add_decayed_weights, ema, scale_by_learning_rate).
"""

import optimlab
from _common import run

run(lambda params: optimlab.EMAMomentum(params, lr=0.1, momentum=0.9), "EMA momentum, lr=0.1, momentum=0.9")
