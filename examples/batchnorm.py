"""Batch normalization as an aid to optimization (Ioffe & Szegedy 2015; seed 003): the same
MLP with and without a BatchNorm1d layer after the hidden Linear, trained by the same
plain SGD at a small and a large learning rate. Compare the losses: on this shallow net
BatchNorm speeds up training at the small rate; at the large rate both train, as one
hidden layer is easy to optimize. Its benefit grows with depth (the lab's
mlp_mnist1d vs mlp_mnist1d_bn problems compare a deeper MLP). The loss is measured in
eval mode, with BatchNorm's running statistics.
"""

import optimlab
from _common import run

for lr in (0.05, 1.0):
    for batchnorm in (False, True):
        run(lambda params: optimlab.SGD(params, lr=lr), f"SGD lr={lr}, batchnorm={batchnorm}",
            batchnorm=batchnorm, log_every=100)
