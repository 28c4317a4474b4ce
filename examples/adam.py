"""Adam (Kingma & Ba 2015): bias-corrected first and second moment estimates.

    optimlab.adam(...) == chain(maximize, add_decayed_weights, scale_by_adam, scale_by_learning_rate)
"""

import optimlab
from _common import run

run(lambda params: optimlab.Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8), "Adam, lr=1e-3")
