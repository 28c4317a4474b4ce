"""LAMB (You et al. 2020): Adam's direction plus decoupled weight decay, each tensor's step
scaled to the norm of its weights (the trust ratio ||p|| / ||u||),

    u = m_hat / (sqrt(v_hat) + eps) + wd p;  p <- p - lr ||p|| / ||u|| u   (per tensor)

so lr is a step relative to each layer's scale, the same for every layer whatever its
gradients' scale: what lets it train with very large batches. Compared with AdamW here at
a large batch (512 of the 1437 training images).

    optimlab.lamb(...) == chain(maximize, scale_by_adam, add_decayed_weights, scale_by_trust_ratio,
                                scale_by_learning_rate)
"""

import optimlab
from _common import run

run(lambda params: optimlab.LAMB(params, lr=1e-2, weight_decay=0.01), "LAMB, lr=1e-2, batch 512", batch_size=512)
run(lambda params: optimlab.AdamW(params, lr=1e-2, weight_decay=0.01), "AdamW, lr=1e-2, batch 512", batch_size=512)
