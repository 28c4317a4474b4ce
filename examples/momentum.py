"""Heavy-ball momentum, torch.optim.SGD's form (Polyak 1964):

    v <- mu * v + g;   p <- p - lr * v

(seed 000 adds the velocity to itself and steps uphill; this is the correct form).
optimlab.create("momentum", params) is the same optimizer with momentum=0.9 preset.
"""

import optimlab
from _common import run

run(lambda params: optimlab.SGD(params, lr=0.01, momentum=0.9), "Heavy-ball momentum, lr=0.01, momentum=0.9")
