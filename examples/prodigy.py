"""Prodigy (Mishchenko & Defazio 2024): Adam whose learning rate estimates itself;
lr=1.0 (the default) means no tuning.

    optimlab.prodigy(...) == chain(scale_by_prodigy)
"""

import optimlab
from _common import run

run(lambda params: optimlab.Prodigy(params), "Prodigy, defaults (lr=1.0: untuned)")
