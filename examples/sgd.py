"""Stochastic (mini-batch) gradient descent: the same update as gd.py, p <- p - lr * g,
but g is the gradient on a random mini-batch of 32 examples, a noisy, cheap estimate of
the full gradient. Also available by name: optimlab.create("sgd", params, lr=0.1).
"""

import optimlab
from _common import run

run(lambda params: optimlab.SGD(params, lr=0.1), "Mini-batch SGD, lr=0.1, batch 32", batch_size=32)
