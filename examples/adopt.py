"""ADOPT (Taniguchi et al. 2024): the gradient normalized by the previous second moment,
clipped, then averaged,

    t = 1: v <- g^2 (no step)
    m <- b1 m + (1 - b1) clip(g / max(sqrt(v), eps), (t - 1)^(1/4));  p <- p - lr m
    v <- b2 v + (1 - b2) g^2

Adam's state and cost; converges for any b2 (default 0.9999). torch.optim has no ADOPT
(the defaults are the authors' and pytorch-optimizer's).
"""

import optimlab
from _common import run

run(lambda params: optimlab.ADOPT(params, lr=1e-3), "ADOPT, lr=1e-3")
