"""RAdam (Liu et al. 2020): Adam whose adaptive step is switched on, and rectified, only
once the variance of the second-moment estimate is tractable (rho_t > 5); before that
it takes bias-corrected momentum-SGD steps: a built-in learning-rate warm-up.
"""

import optimlab
from _common import run

run(lambda params: optimlab.RAdam(params, lr=1e-3), "RAdam, lr=1e-3")
