"""D-Adaptation Adam (Defazio & Mishchenko 2023): Adam whose learning rate estimates
itself; lr=1.0 (the default) means no tuning.

    optimlab.dadapt_adam(...) == chain(scale_by_dadapt_adam)
"""

import optimlab
from _common import run

run(lambda params: optimlab.DAdaptAdam(params), "DAdaptAdam, defaults (lr=1.0: untuned)")
