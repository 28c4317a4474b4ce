"""NAdam (Dozat 2016): Adam with Nesterov momentum and the momentum schedule
mu_t = b1 * (1 - 0.5 * 0.96^(t * momentum_decay)). torch.optim.NAdam's lr default is 2e-3.
"""

import optimlab
from _common import run

run(lambda params: optimlab.NAdam(params, lr=2e-3, momentum_decay=4e-3), "NAdam, lr=2e-3")
