"""Mixing strategies with combinators around any chain:

* lookahead(adam): slow weights pulled toward Adam's every 5 steps (Zhang et al. 2019);
* switch(adam, sgd, at=150): Adam for 150 steps, then SGD with momentum (Keskar & Socher 2017);
* multi_steps(adam, every_k=4): gradient accumulation, one Adam step per 4 mini-batches;
* apply_if_finite(adam): skip a step whose gradients hold inf/NaN.
"""

import optimlab
from _common import run

adam = optimlab.adam(lr=1e-3)
run(lambda params: optimlab.Optimizer(params, optimlab.lookahead(adam, k=5, alpha=0.5)), "lookahead(adam)")
run(lambda params: optimlab.Lookahead(optimlab.SGD(params, lr=0.1, momentum=0.9)), "Lookahead(SGD momentum)")
run(lambda params: optimlab.Optimizer(params, optimlab.switch(adam, optimlab.sgd(lr=0.05, momentum=0.9), at=150)),
    "switch(adam, sgd, at=150)")
run(lambda params: optimlab.Optimizer(params, optimlab.multi_steps(adam, every_k=4)), "multi_steps(adam, 4)")
run(lambda params: optimlab.Optimizer(params, optimlab.apply_if_finite(adam)), "apply_if_finite(adam)")
