"""Nesterov momentum, torch.optim.SGD's form (Sutskever et al. 2013; Bengio et al. 2013):

    v <- mu * v + g;   p <- p - lr * (g + mu * v)

Same as optimlab.create("nesterov", params, lr=0.01).
"""

import optimlab
from _common import run

run(lambda params: optimlab.SGD(params, lr=0.01, momentum=0.9, nesterov=True), "Nesterov momentum, lr=0.01, momentum=0.9")
