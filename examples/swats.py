"""SWATS (Keskar & Socher 2017): Adam that switches itself to SGD with momentum, at the
learning rate it estimates from Adam's steps.

    optimlab.swats(...) == chain(maximize, add_decayed_weights, scale_by_swats)
"""

import optimlab
from _common import run

run(lambda params: optimlab.SWATS(params, lr=1e-3), "SWATS, lr=1e-3 (Adam phase)")
