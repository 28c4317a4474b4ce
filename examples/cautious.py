"""Cautious optimizers (Liang et al. 2024): the update of a preconditioner, zeroed where
its sign disagrees with the gradient's and rescaled per tensor by numel / (kept + 1),

    r = preconditioner(g);  mask = [r g > 0];  r <- r mask numel / (sum(mask) + 1)

`cautious(inner)` wraps any preconditioner chain; Cautious AdamW is
chain(maximize, cautious(scale_by_adam), add_decayed_weights, scale_by_learning_rate).
Here AdamW and Cautious AdamW, then a cautious AdaBelief composed by hand.
"""

import optimlab
from _common import run

run(lambda params: optimlab.AdamW(params, lr=1e-3), "AdamW, lr=1e-3")
run(lambda params: optimlab.CautiousAdamW(params, lr=1e-3), "Cautious AdamW, lr=1e-3")
cautious_adabelief = optimlab.chain(
    optimlab.cautious(optimlab.scale_by_belief()), optimlab.add_decayed_weights(0.01),
    optimlab.scale_by_learning_rate(1e-3),
)
run(lambda params: optimlab.Optimizer(params, cautious_adabelief), "cautious(scale_by_belief), lr=1e-3")
