"""LARS (You, Gitman & Ginsburg 2017): SGD with momentum, each tensor's step scaled by its
local learning rate eta ||w|| / (||g|| + wd ||w||),

    v <- momentum v + lr local_lr (g + wd w);  w <- w - v

so every layer moves by about lr * eta of its own norm per step (eta = trust_coefficient =
1e-3: LARS's lr is ~100-1000x SGD's). Compared with SGD + momentum at a large batch.

    optimlab.lars(...) == chain(maximize, scale_by_lars, scale_by_learning_rate, trace)
"""

import optimlab
from _common import run

run(lambda params: optimlab.LARS(params, lr=3.0, momentum=0.9, weight_decay=1e-4), "LARS, lr=3, batch 512",
    batch_size=512)
run(lambda params: optimlab.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4), "SGD + momentum, lr=0.1, batch 512",
    batch_size=512)
