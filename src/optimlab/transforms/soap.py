"""SOAP: Adam in the eigenbasis of Shampoo's preconditioner."""

from __future__ import annotations

import math

import torch

from .. import checks
from ..transform import Transform
from . import batching
from .batching import by_shape
from .muon import as_matrix


def _optional_decay_rate(name, value) -> None:
    if value is not None:
        checks.decay_rate(name, value)


class scale_by_soap(Transform):
    r"""SOAP (Vyas et al. 2024, "SOAP: Improving and Stabilizing Shampoo using Adam",
    Algorithm 3). For a gradient matrix :math:`G_t` (:math:`m \times n`), Shampoo's
    two-sided statistics and their eigenbases,

    .. math:: L_t = \beta_s L_{t-1} + (1-\beta_s)\, G_t G_t^\top, \qquad
              R_t = \beta_s R_{t-1} + (1-\beta_s)\, G_t^\top G_t, \qquad
              Q_L, Q_R \text{ eigenvectors of } L, R,

    and Adam run in that basis:

    .. math:: M_t = \beta_1 M_{t-1} + (1-\beta_1) G_t, \quad G'_t = Q_L^\top G_t Q_R, \quad
              V_t = \beta_2 V_{t-1} + (1-\beta_2) G'^2_t,

    .. math:: u \leftarrow \frac{\sqrt{1-\beta_2^k}}{1-\beta_1^k}\;
              Q_L \frac{Q_L^\top M_t Q_R}{\sqrt{V_t} + \epsilon} Q_R^\top, \qquad k = t - 1 .

    The paper keeps :math:`M` in the original basis and rotates it at every step; this keeps
    it rotated, :math:`\tilde M = Q_L^\top M Q_R` (state ``rotated_exp_avg``:
    :math:`\tilde M_t = \beta_1 \tilde M_{t-1} + (1-\beta_1) G'_t`, the same numbers while
    the bases stand), and turns it into each refreshed basis,
    :math:`\tilde M \leftarrow (Q_L'^\top Q_L) \tilde M (Q_R^\top Q_R')`: two products fewer per
    step, four more per refresh.

    The first step only gathers :math:`L, R` and takes their eigenbases
    (``torch.linalg.eigh``); it updates nothing. After each later step :math:`L, R` take
    the step's gradient, and every ``precondition_frequency`` steps the bases are refreshed
    by one power iteration and a QR decomposition, :math:`Q \leftarrow \operatorname{qr}(L Q)`,
    with the columns in decreasing order of :math:`\operatorname{diag}(Q^\top L Q)` and
    :math:`V` permuted with them (the paper's cheaper alternative to an eigendecomposition).

    A side longer than ``max_precondition_dim`` keeps the identity as its basis; a vector
    is Adam in its own coordinates unless ``precondition_1d`` (then one side, :math:`L`);
    a tensor of more dimensions is preconditioned as its ``out x (the rest)`` matrix.
    Defaults (the authors' code and pytorch-optimizer's): ``betas=(0.95, 0.95)``,
    ``shampoo_beta=None`` (:math:`\beta_s = \beta_2`), ``eps=1e-8``,
    ``precondition_frequency=10``, ``max_precondition_dim=10000``, ``precondition_1d=False``.
    The decompositions run in the parameter's dtype (float32 for 16-bit ones).
    """

    checks = {"betas": checks.betas, "shampoo_beta": _optional_decay_rate, "eps": checks.positive,
              "precondition_frequency": checks.positive_integer, "max_precondition_dim": checks.positive_integer,
              "precondition_1d": checks.boolean}
    state_keys = ("rotated_exp_avg", "exp_avg_sq", "left", "right", "left_basis", "right_basis")

    def __init__(self, betas=(0.95, 0.95), shampoo_beta: float | None = None, eps: float = 1e-8,
                 precondition_frequency: int = 10, max_precondition_dim: int = 10000,
                 precondition_1d: bool = False) -> None:
        super().__init__(betas=betas, shampoo_beta=shampoo_beta, eps=eps, precondition_frequency=precondition_frequency,
                         max_precondition_dim=max_precondition_dim, precondition_1d=precondition_1d)

    def init(self, params, hyperparams):
        return two_sided_state(params, "SOAP", "basis", hyperparams["max_precondition_dim"],
                               hyperparams["precondition_1d"], first_moment="rotated_exp_avg")

    def coefficients(self, hyperparams, step, state):
        beta1, beta2 = hyperparams["betas"]
        k = step - 1  # the first step takes no Adam step
        return {"step_size": math.sqrt(1 - beta2**k) / (1 - beta1**k) if k else 0.0}

    def update(self, updates, state, params, hyperparams, step):
        beta1, beta2 = hyperparams["betas"]
        statistics_weight = 1 - (beta2 if hyperparams["shampoo_beta"] is None else hyperparams["shampoo_beta"])
        step_size = self.coefficients(hyperparams, step, state)["step_size"]
        refresh = step > 1 and (step - 1) % hyperparams["precondition_frequency"] == 0
        out: list[torch.Tensor] = [None] * len(updates)  # type: ignore[list-item]
        fresh, refreshed = [], []  # the step's decompositions, made together (`by_shape`)
        for indices, shape in matrix_groups(updates):
            grad = batching.stack([matrix_view(updates[i]) for i in indices])
            sides = stacked_sides(state, "basis", indices, shape)
            if step == 1:
                _gather(grad, sides, statistics_weight)
                fresh.extend((statistics, basis) for statistics, basis in sides if statistics is not None)
                for i in indices:
                    out[i] = torch.zeros_like(updates[i])
                continue
            rotated = _project(grad, sides)
            exp_avg = batching.stacked(state["rotated_exp_avg"], indices, shape).lerp_(rotated, 1 - beta1)
            # Out of place: without a basis on either side a projection is its input itself.
            exp_avg_sq = batching.stacked(state["exp_avg_sq"], indices, shape).lerp_(rotated.square(), 1 - beta2)
            direction = exp_avg / exp_avg_sq.sqrt().add_(hyperparams["eps"])
            for i, u in zip(indices, batching.unstack(_project_back(direction, sides).mul_(step_size))):
                out[i] = u.view_as(updates[i])
            _gather(grad, sides, statistics_weight)
            if refresh:
                refreshed.extend((exp_avg, exp_avg_sq, dim, statistics, basis)
                                 for dim, (statistics, basis) in enumerate(sides) if statistics is not None)
        statistics = [stack.to(working_dtype(stack)) for stack, _ in fresh]
        for (_, basis), (_, vectors) in zip(fresh, by_shape(torch.linalg.eigh, statistics)):
            basis.copy_(vectors.flip(-1))  # in decreasing order of eigenvalue
        _refresh(refreshed)
        return updates.wrap(out)


def preconditioned_sides(p: torch.Tensor, limit: int, precondition_1d: bool) -> tuple[int | None, int | None]:
    """The sizes of the preconditioned sides of ``p``'s matrix (None: the identity): a side
    longer than ``limit`` is not; a vector is a column, its one side only if ``precondition_1d``."""
    if p.ndim <= 1:
        rows = p.numel() if p.ndim == 1 and precondition_1d else None
        return (rows if rows is not None and rows <= limit else None), None
    rows, columns = as_matrix(p).shape
    return (rows if rows <= limit else None), (columns if columns <= limit else None)


def two_sided_state(params, optimizer: str, derived: str, limit: int, precondition_1d: bool,
                    first_moment: str = "exp_avg") -> dict:
    """Adam's moments (``first_moment``, ``exp_avg_sq``) and, per preconditioned side, the
    statistics ``left``/``right`` and a matrix ``{side}_{derived}`` made from them (None
    where a side keeps the identity), those of same-shaped matrices slices of one stack each
    (`batching.zeros`); a complex parameter raises ValueError naming ``optimizer``."""
    keys = (first_moment, "exp_avg_sq", "left", "right", f"left_{derived}", f"right_{derived}")
    state: dict[str, list] = {key: [None] * len(params) for key in keys}
    for p in params:
        if p.is_complex():
            raise ValueError(f"params: {optimizer} takes real parameters only, got one of dtype {p.dtype}")
    for indices, shape in matrix_groups(params):
        like = params[indices[0]]
        shapes = {first_moment: shape, "exp_avg_sq": shape}
        for side, size in zip(("left", "right"), preconditioned_sides(like, limit, precondition_1d)):
            if size is not None:
                shapes[side] = shapes[f"{side}_{derived}"] = (size, size)
        for key, buffer_shape in shapes.items():
            for i, buffer in zip(indices, batching.zeros(len(indices), buffer_shape, like)):
                state[key][i] = buffer.view_as(params[i]) if key in (first_moment, "exp_avg_sq") else buffer
    return {key: params.wrap(value) for key, value in state.items()}


def matrix_groups(tensors) -> list[tuple[list[int], torch.Size]]:
    """The indices of ``tensors`` whose matrices (`matrix_view`) have one shape, dtype and
    device, with that shape: the groups stepped as one stack."""
    matrices = [matrix_view(t) for t in tensors]
    return [(indices, matrices[indices[0]].shape) for indices in batching.step_groups(matrices)]


def stacked_sides(state, derived: str, indices, shape) -> list[tuple[torch.Tensor | None, torch.Tensor | None]]:
    """The statistics and ``{side}_{derived}`` stacks of the group ``indices`` of
    ``shape``-matrices, per side (None, None where the side keeps the identity; the
    optimizer steps tensors with the same buffers together, so a bucket of vectors has no
    ``left``/``right`` at all)."""
    sides = []
    for side, size in zip(("left", "right"), shape):
        if state.get(side) is None or state[side][indices[0]] is None:
            sides.append((None, None))
            continue
        sides.append(tuple(batching.stacked(state[key], indices, (size, size)) for key in (side, f"{side}_{derived}")))
    return sides


def matrix_view(t: torch.Tensor) -> torch.Tensor:
    """``t`` as a matrix view (a vector as a column)."""
    return t.view(-1, 1) if t.ndim <= 1 else as_matrix(t)


def _gather(grad, sides, weight: float) -> None:
    (left, _), (right, _) = sides
    if left is not None:
        left.lerp_(grad @ grad.mT, weight)
    if right is not None:
        right.lerp_(grad.mT @ grad, weight)


def _project(x, sides) -> torch.Tensor:
    """:math:`Q_L^\\top X Q_R` (a side without a basis: the identity)."""
    (_, left), (_, right) = sides
    x = x if left is None else left.mT @ x
    return x if right is None else x @ right


def _project_back(x, sides) -> torch.Tensor:
    (_, left), (_, right) = sides
    x = x if left is None else left @ x
    return x if right is None else x @ right.mT


def working_dtype(t: torch.Tensor) -> torch.dtype:
    # LAPACK has no 16-bit routines (torch.linalg.eigh, qr and solve_triangular raise for them).
    return t.dtype if t.dtype in (torch.float32, torch.float64) else torch.float32


def _refresh(refreshed) -> None:
    r"""One power iteration and QR on each stack of bases, in place: :math:`Q' = \operatorname{qr}(L Q)`,
    the columns in decreasing order of :math:`\operatorname{diag}(Q^\top L Q)`; the rotated
    first moments turned into the new bases (side ``dim``: :math:`\tilde M \leftarrow
    Q'^\top Q \tilde M`, or :math:`\tilde M Q^\top Q'`), the second moments permuted with
    the columns (``refreshed``: (rotated first moments, second moments, dim, statistics,
    bases), stacks)."""
    products, orders = [], []
    for _, _, _, statistics, basis in refreshed:
        product = statistics @ basis
        orders.append(torch.argsort((basis * product).sum(-2), descending=True))
        products.append(product.gather(-1, orders[-1].unsqueeze(-2).expand_as(product)).to(working_dtype(product)))
    for (exp_avg, exp_avg_sq, dim, _, basis), order, (q, _) in zip(refreshed, orders,
                                                                  by_shape(torch.linalg.qr, products)):
        new = q.to(basis.dtype)
        turn = new.mT @ basis
        exp_avg.copy_(turn @ exp_avg if dim == 0 else exp_avg @ turn.mT)
        basis.copy_(new)
        index = order.unsqueeze(-1 if dim == 0 else -2).expand_as(exp_avg_sq)
        exp_avg_sq.copy_(exp_avg_sq.gather(dim - 2, index))
