"""PSGD-Kron (Li 2015/2018, kron_torch): momentum whitened by a Kronecker-factored
preconditioner Q = Q_1 x Q_2 fitted on its Lie group,

    m <- b m + (1 - b) g;  h = m / (1 - b^t)
    v ~ N(0, I);  A = Q h,  B = Q^-T v;  Q_i <- Q_i - 0.1 triu(A_i A_i^T - B_i B_i^T) Q_i / ||...||
    p <- p - lr clip_rms(Q^T Q h, 1.1)

Weights get triangular factors, biases diagonal ones. Its default lr, 1e-3, is a good start.
"""

import optimlab
from _common import run

run(lambda params: optimlab.PSGDKron(params, lr=1e-3), "PSGD-Kron, lr=1e-3")
