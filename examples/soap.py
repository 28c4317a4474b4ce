"""SOAP (Vyas et al. 2024): Adam in the eigenbasis of Shampoo's preconditioner,

    L <- b L + (1 - b) G G^T;  R <- b R + (1 - b) G^T G;  Q_L, Q_R their eigenbases
    M <- b1 M + (1 - b1) G;  V <- b2 V + (1 - b2) (Q_L^T G Q_R)^2
    p <- p (1 - lr wd) - lr c_t Q_L [(Q_L^T M Q_R) / (sqrt(V) + eps)] Q_R^T

with the bases refreshed every `precondition_frequency` steps. Weights are preconditioned,
biases get plain Adam. Its default lr, 3e-3, is a good start.
"""

import optimlab
from _common import run

run(lambda params: optimlab.SOAP(params, lr=3e-3), "SOAP, lr=3e-3")
