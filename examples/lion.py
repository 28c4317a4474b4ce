"""Lion (Chen et al. 2023): the sign of an interpolated momentum, with decoupled decay,

    c <- b1 m + (1 - b1) g;  p <- p - lr (sign(c) + wd p);  m <- b2 m + (1 - b2) g

Every coordinate moves by lr, so Lion takes a learning rate 3-10x smaller than AdamW's
(and a weight decay 3-10x larger). torch.optim has no Lion.
"""

import optimlab
from _common import run

run(lambda params: optimlab.Lion(params, lr=3e-4, betas=(0.9, 0.99), weight_decay=0.1), "Lion, lr=3e-4")
