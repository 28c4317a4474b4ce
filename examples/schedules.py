"""A learning-rate schedule passed as lr: linear warm-up over 30 steps to 3e-3, then cosine
decay to 0 at step 300. The schedule is a function of the parameter's own step count,
so it resumes with the optimizer's state; use it instead of a torch lr_scheduler.
"""

import optimlab
from _common import run
from optimlab.schedules import warmup_cosine

schedule = warmup_cosine(peak_value=3e-3, warmup_steps=30, decay_steps=300)
print("lr at steps 0, 15, 30, 150, 299:", ", ".join(f"{schedule(t):.2e}" for t in (0, 15, 30, 150, 299)))
run(lambda params: optimlab.Adam(params, lr=schedule), "Adam, lr=warmup_cosine(3e-3, 30, 300)", steps=300)
