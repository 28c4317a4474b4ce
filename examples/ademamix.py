"""AdEMAMix (Pagliardini et al. 2024): Adam plus a slow EMA of the gradient, weighted by alpha,

    m1 <- b1 m1 + (1 - b1) g;  m2 <- b3_t m2 + (1 - b3_t) g;  v <- b2 v + (1 - b2) g^2
    p <- p - lr (m1 / (1 - b1^t) + alpha_t m2) / (sqrt(v / (1 - b2^t)) + eps)

alpha_t and b3_t warm up over t_alpha_beta3 steps (about the run's length, the paper's
advice). torch.optim has no AdEMAMix (the defaults are pytorch-optimizer's).
"""

import optimlab
from _common import run

run(lambda params: optimlab.AdEMAMix(params, lr=1e-3, t_alpha_beta3=1000), "AdEMAMix, lr=1e-3, t_alpha_beta3=1000")
