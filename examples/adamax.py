"""AdaMax (Kingma & Ba 2015, section 7.1): Adam with the infinity norm,

    m <- b1 m + (1 - b1) g;  u <- max(b2 u, |g| + eps);  p <- p - lr / (1 - b1^t) * m / u

torch.optim.Adamax's default lr is 2e-3 (the paper's alpha). Seed 003's "Adam" section
names AdaMax but gives a formula that is neither.
"""

import optimlab
from _common import run

run(lambda params: optimlab.Adamax(params, lr=2e-3, betas=(0.9, 0.999)), "AdaMax, lr=2e-3")
