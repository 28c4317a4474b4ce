"""AdaBelief (Zhuang et al. 2020): Adam scaled by the gradient's deviation from its EMA,

    m <- b1 m + (1 - b1) g;  s <- b2 s + (1 - b2) (g - m)^2 + eps
    p <- p - lr wd p - lr (m / (1 - b1^t)) / (sqrt(s / (1 - b2^t)) + eps)

Adam's state and cost; tune lr as for Adam. torch.optim has no AdaBelief (the defaults
are the authors' and pytorch-optimizer's).
"""

import optimlab
from _common import run

run(lambda params: optimlab.AdaBelief(params, lr=1e-3, weight_decay=0.01), "AdaBelief, lr=1e-3")
