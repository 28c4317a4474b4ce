"""Adafactor (Shazeer & Stern 2018): Adam without momentum whose second moment of each weight
matrix is kept as its row and column means (m + n numbers, not m n), with update clipping
and a step relative to each tensor's RMS,

    V = R C / mean(R);  U = g / sqrt(V);  U /= max(1, RMS(U) / d)
    p <- p (1 - lr wd) - max(eps2, RMS(p)) min(lr, 1/sqrt(t)) U

lr caps the relative step (the paper's 0.01, torch.optim.Adafactor's default).
"""

import optimlab
from _common import run

run(lambda params: optimlab.Adafactor(params, lr=1e-2), "Adafactor, lr=1e-2")
