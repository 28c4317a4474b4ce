"""Muon (Jordan et al. 2024): momentum orthogonalized by Newton-Schulz, for the 2-D weights,

    B <- mu B + (1 - mu) g;  U = (1 - mu) g + mu B;  O ~ U's nearest semi-orthogonal matrix;
    p <- p - lr (s O + wd p)

with AdamW for the biases: `MuonWithAdamW` (what `optimlab.create("muon", ...)` builds).
`adjust_lr_fn="match_rms_adamw"` scales Muon's step to AdamW's RMS, so one learning rate
suits both. `optimlab.Muon` alone takes 2-D parameters only, as torch.optim.Muon.
"""

import optimlab
from _common import run

run(lambda params: optimlab.MuonWithAdamW(params, lr=3e-3, weight_decay=0.01, adjust_lr_fn="match_rms_adamw"),
    "Muon (weights) + AdamW (biases), lr=3e-3")
