"""Gradient descent, full batch: every step uses the gradient of the loss over the whole
training set, p <- p - lr * grad. optimlab.SGD without momentum; the batch size is what
makes it "full-batch" (seed 000/002/004: theta_{t+1} = theta_t - eta * grad J(theta_t)).

    optimlab.sgd(...) == chain(maximize, add_decayed_weights, trace, scale_by_learning_rate)
"""

import optimlab
from _common import run

run(lambda params: optimlab.SGD(params, lr=0.5), "Full-batch gradient descent, lr=0.5", batch_size=None)
