"""RMSprop (Hinton 2012), plain and centered (Graves 2013):

    v <- a * v + (1 - a) * g^2;  p <- p - lr * g / (sqrt(v - gbar^2) + eps)

where gbar, a moving average of g, is kept only when centered=True (seed 000's variant
tracks both averages). No bias correction (seed 001 adds one); eps is no decay factor.
"""

import optimlab
from _common import run

for centered in (False, True):
    run(lambda params: optimlab.RMSprop(params, lr=1e-3, alpha=0.99, centered=centered),
        f"RMSprop, lr=1e-3, alpha=0.99, centered={centered}")
