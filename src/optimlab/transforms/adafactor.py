r"""Adafactor's parts (Shazeer & Stern 2018, "Adafactor: Adaptive Learning Rates with
Sublinear Memory Cost"): the factored second-moment scaling, the RMS update clipping, and
the relative step size. Adafactor (`optimlab.adafactor`) chains them with decoupled
weight decay and the learning rate, as torch.optim.Adafactor does.

The three act on whole tensors (row and column means, RMS norms), not on elements, so
they have no fused snippet and a chain holding them runs on the eager path. The
hyperparameter ``eps`` is torch.optim.Adafactor's pair :math:`(\epsilon_1, \epsilon_2)`:
`scale_by_factored_rms` reads the first, `scale_by_relative_step_size` the second.
"""

from __future__ import annotations

import math

import torch

from .. import checks
from ..transform import Transform
from .basic import scale_by_learning_rate

EPS = (None, 1e-3)


def check_real(params) -> None:
    """Raise ValueError for a complex parameter: its real view would be factored over
    (last dim, real/imaginary), which torch.optim.Adafactor does not do either."""
    for p in params:
        if p.is_complex():
            raise ValueError(f"params: Adafactor takes real parameters only, got one of dtype {p.dtype}")


def _eps(name, value) -> None:
    """torch.optim.Adafactor's ``(eps1, eps2)``: eps1 None (the dtype's epsilon) or >= 0, eps2 >= 0."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be a pair (eps1, eps2), got {value!r}")
    if value[0] is not None:
        checks.non_negative(f"{name}[0]", value[0])
    checks.non_negative(f"{name}[1]", value[1])


def _non_positive(name, value) -> None:
    if checks._number(name, value) > 0:
        raise ValueError(f"{name} must be <= 0, got {value!r}")


def _clipping_threshold(name, value) -> None:
    # inf turns clipping off: torch.optim.Adafactor accepts it.
    if value != math.inf and checks._number(name, value) < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")


def _rms(tensor: torch.Tensor) -> float:
    return tensor.norm(2).item() / math.sqrt(tensor.numel())


def factored(tensor: torch.Tensor) -> bool:
    """Whether Adafactor keeps row and column factors for this tensor (2-D and more)."""
    return tensor.ndim >= 2


class scale_by_factored_rms(Transform):
    r"""Adafactor's second-moment scaling (Shazeer & Stern 2018, Algorithms 4 and 5, in
    torch.optim.Adafactor's form). With :math:`\hat\beta_{2,t} = 1 - t^{\tau}`:

    for a tensor of 2 or more dims, over its last two (rows :math:`i`, columns :math:`j`;
    any leading dims are a batch of matrices),

    .. math:: R_t = \hat\beta_{2,t} R_{t-1} + (1-\hat\beta_{2,t})\,\operatorname{mean}_j g^2, \quad
              C_t = \hat\beta_{2,t} C_{t-1} + (1-\hat\beta_{2,t})\,\operatorname{mean}_i g^2, \quad
              \hat V_t = \frac{R_t C_t}{\max(\operatorname{mean}_i R_t, \epsilon_1)};

    for a vector or a scalar, :math:`\hat V_t = \hat\beta_{2,t} \hat V_{t-1} + (1-\hat\beta_{2,t})\, g^2`;
    then :math:`u \leftarrow g / \max(\sqrt{\hat V_t}, \epsilon_1)`.

    The state of an :math:`m \times n` matrix is :math:`m + n` numbers (``row_var``,
    ``col_var``), not :math:`mn`; vectors keep a full ``variance``. :math:`\hat\beta_{2,t}`
    is 0 at the first step and rises towards 1, so early steps average few gradients and
    late ones many (no bias correction is needed). Hyperparameters ``beta2_decay``
    (:math:`\tau`, default -0.8, <= 0) and ``eps``, of which this reads :math:`\epsilon_1`
    (default None: the parameter dtype's machine epsilon). The paper adds :math:`\epsilon_1`
    to :math:`g^2` instead; torch clamps as above, and so does this.
    """

    checks = {"beta2_decay": _non_positive, "eps": _eps}
    state_keys = ("row_var", "col_var", "variance")

    def __init__(self, beta2_decay: float = -0.8, eps=EPS) -> None:
        super().__init__(beta2_decay=beta2_decay, eps=eps)

    def init(self, params, hyperparams):
        # Each parameter keeps the buffers of its layout only (None in the others' lists).
        row_var, col_var, variance = [], [], []
        for p in params:
            if factored(p):
                row_var.append(p.new_zeros(*p.shape[:-1], 1))
                col_var.append(p.new_zeros(*p.shape[:-2], 1, p.shape[-1]))
                variance.append(None)
            else:
                row_var.append(None)
                col_var.append(None)
                variance.append(torch.zeros_like(p, memory_format=torch.preserve_format))
        return {"row_var": params.wrap(row_var), "col_var": params.wrap(col_var), "variance": params.wrap(variance)}

    def update(self, updates, state, params, hyperparams, step):
        # Row and column means per tensor: there is no multi-tensor form to take.
        weight = step ** hyperparams["beta2_decay"]  # 1 - beta2_t
        eps1 = hyperparams["eps"][0]
        scaled = []
        for i, g in enumerate(updates):
            eps = torch.finfo(g.dtype).eps if eps1 is None else eps1
            if factored(g):
                # torch's operations: a norm per row/column, no full-size g * g temporary.
                row_var = state["row_var"][i].lerp_(g.norm(dim=-1, keepdim=True).square_().div_(g.size(-1)), weight)
                col_var = state["col_var"][i].lerp_(g.norm(dim=-2, keepdim=True).square_().div_(g.size(-2)), weight)
                estimate = (row_var @ col_var).div_(row_var.mean(dim=-2, keepdim=True).clamp_(min=eps))
            else:
                estimate = state["variance"][i].lerp_(g * g, weight).clone()
            # max(sqrt(V), eps1) as torch takes it: clamp V at eps1^2, then rsqrt.
            scaled.append(estimate.clamp_(min=eps * eps).rsqrt_().mul_(g))
        return updates.wrap(scaled)


class clip_by_block_rms(Transform):
    r"""Adafactor's update clipping, per tensor (Shazeer & Stern 2018, section 6):

    .. math:: u \leftarrow \frac{u}{\max\big(1, \operatorname{RMS}(u) / d\big)}, \qquad
              \operatorname{RMS}(u) = \lVert u\rVert_2 / \sqrt{\text{numel}(u)} .

    With a slowly adapting second moment, a gradient much larger than its running average
    would give an update far larger than typical; this bounds each tensor's update RMS by
    ``d``. Hyperparameter ``d``, default 1.0 (the paper's and torch.optim.Adafactor's),
    >= 1; ``inf`` turns clipping off. optax's ``clip_by_block_rms``.
    """

    checks = {"d": _clipping_threshold}

    def __init__(self, d: float = 1.0) -> None:
        super().__init__(d=d)

    def update(self, updates, state, params, hyperparams, step):
        d = hyperparams["d"]
        return updates * [1 / max(1.0, _rms(u) / d) for u in updates]


class scale_by_relative_step_size(Transform):
    r"""Adafactor's step size, relative to each parameter tensor's scale (Shazeer & Stern
    2018, section 8), in torch.optim.Adafactor's form:

    .. math:: \alpha_t = \max\big(\epsilon_2, \operatorname{RMS}(\theta_{t-1})\big)\,\rho_t, \qquad
              \rho_t = \min(\eta, 1/\sqrt t) .

    A tensor of large weights takes proportionally large steps; :math:`\epsilon_2` lets a
    tensor at 0 move. :math:`\rho_t` is the learning rate :math:`\eta` (the paper fixes it
    at 0.01) until step :math:`1/\eta^2`, then decays as :math:`1/\sqrt t`. As the chain
    ends with ``scale_by_learning_rate`` (:math:`-\eta`), which also scales a decoupled
    weight decay as torch does, this multiplies by :math:`\alpha_t/\eta`:
    :math:`u \leftarrow \max(\epsilon_2, \operatorname{RMS}(\theta))\min(1, 1/(\eta\sqrt t))\,u`.
    Hyperparameters ``eps``, of which this reads :math:`\epsilon_2` (default 1e-3), and
    ``lr`` (:math:`\eta`, no default here: give it the value ``scale_by_learning_rate`` has).
    """

    checks = {"eps": _eps, "lr": checks.learning_rate}

    def __init__(self, lr, eps=EPS) -> None:
        super().__init__(lr=lr, eps=eps)

    def update(self, updates, state, params, hyperparams, step):
        eps2 = hyperparams["eps"][1]
        lr_sqrt_t = scale_by_learning_rate.learning_rate(hyperparams, step) * math.sqrt(step)
        decay = 1.0 if lr_sqrt_t <= 1 else 1 / lr_sqrt_t  # min(1, 1/(lr sqrt t)), and 1 at lr = 0
        return updates * [max(eps2, _rms(p)) * decay for p in params]
