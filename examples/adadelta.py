"""Adadelta (Zeiler 2012): the step is RMS[previous updates] / RMS[gradients] * g, so it
has the units of the parameters and the paper needs no learning rate. torch.optim's
lr=1.0 keeps the paper's update; rho=0.9 and eps=1e-6 are torch's defaults
(the paper's experiments used rho=0.95). Seed 000's "Adadelta" is really RMSprop.
"""

import optimlab
from _common import run

run(lambda params: optimlab.Adadelta(params, lr=1.0, rho=0.9, eps=1e-6), "Adadelta, lr=1.0 (no learning rate)")
