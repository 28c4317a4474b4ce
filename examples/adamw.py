"""AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay,
p <- p - lr * (m_hat / (sqrt(v_hat) + eps) + wd * p). Compared here with Adam's coupled
L2 decay (weight_decay added to the gradient before the moments), at the same wd.

    optimlab.adamw(...) == chain(maximize, scale_by_adam, add_decayed_weights, scale_by_learning_rate)
    optimlab.adam(..., weight_decay=wd) == chain(maximize, add_decayed_weights, scale_by_adam, scale_by_learning_rate)
"""

import optimlab
from _common import run

run(lambda params: optimlab.AdamW(params, lr=1e-3, weight_decay=0.1), "AdamW (decoupled), lr=1e-3, weight_decay=0.1")
run(lambda params: optimlab.Adam(params, lr=1e-3, weight_decay=0.1), "Adam + L2 (coupled), lr=1e-3, weight_decay=0.1")
