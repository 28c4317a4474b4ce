"""MARS-AdamW (Yuan et al. 2024), approximate form: AdamW on a variance-reduced gradient,

    c <- g + gamma b1 / (1 - b1) (g - g_prev);  c <- c / max(1, ||c||)   (per tensor)
    m <- b1 m + (1 - b1) c;  v <- b2 v + (1 - b2) c^2
    p <- p - lr wd p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

One buffer more than AdamW's (the previous gradient). torch.optim has no MARS (the
defaults are the authors' and pytorch-optimizer's).
"""

import optimlab
from _common import run

run(lambda params: optimlab.MARS(params, lr=3e-3), "MARS, lr=3e-3")
