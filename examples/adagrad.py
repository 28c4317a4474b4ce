"""Adagrad (Duchi, Hazan & Singer 2011): G <- G + g^2;  p <- p - lr * g / (sqrt(G) + eps).

initial_accumulator_value=0.1 starts G at 0.1 as TensorFlow/Keras do (seed 000's code);
torch.optim's default is 0. eps=1e-10 only guards the division.
"""

import optimlab
from _common import run

run(lambda params: optimlab.Adagrad(params, lr=0.05, initial_accumulator_value=0.1),
    "Adagrad, lr=0.05, initial_accumulator_value=0.1")
