"""Shampoo: two-sided inverse-root preconditioning, its step size grafted from Adam's."""

from __future__ import annotations

import torch

from .. import checks
from ..transform import Transform
from . import batching
from .batching import by_shape
from .soap import matrix_groups, matrix_view, stacked_sides, two_sided_state, working_dtype

# Meta's guard against a zero Shampoo direction in the grafting ratio.
_GRAFTING_GUARD = 1e-16


def _betas(name, value) -> None:
    """beta1 in [0, 1); beta2 in [0, 1], 1 summing the statistics (Shampoo's and Adagrad's form)."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be a pair (beta1, beta2), got {value!r}")
    checks.decay_rate(f"{name}[0]", value[0])
    checks.unit_interval(f"{name}[1]", value[1])


def _optional_unit_interval(name, value) -> None:
    if value is not None:
        checks.unit_interval(name, value)


def _optional_positive_integer(name, value) -> None:
    if value is not None:
        checks.positive_integer(name, value)


class scale_by_shampoo(Transform):
    r"""Shampoo (Gupta, Koren & Singer 2018, "Shampoo: Preconditioned Stochastic Tensor
    Optimization"; Anil et al. 2020, "Scalable Second Order Optimization for Deep Learning")
    with Adam grafting, as Meta's Distributed Shampoo defines it (Shi et al. 2023, "A
    Distributed Data-Parallel PyTorch Implementation of the Distributed Shampoo Optimizer",
    the AlgoPerf submission). For a gradient matrix :math:`G_t` (:math:`m \times n`):

    .. math:: L_t = \beta_2 L_{t-1} + (1-\beta_2)\, G_t G_t^\top, \qquad
              R_t = \beta_2 R_{t-1} + (1-\beta_2)\, G_t^\top G_t

    (sums, :math:`L_t = L_{t-1} + G_t G_t^\top`, when :math:`\beta_2 = 1`), Adam's moments
    with the grafting :math:`\beta_g` (default :math:`\beta_2`),

    .. math:: M_t = \beta_1 M_{t-1} + (1-\beta_1) G_t, \qquad
              V_t = \beta_g V_{t-1} + (1-\beta_g) G_t^2, \qquad
              \hat M = \frac{M_t}{1-\beta_1^t}, \quad
              A_t = \frac{\hat M}{\sqrt{V_t / (1-\beta_g^t)} + \epsilon_g},

    and every ``precondition_frequency`` steps from ``start_preconditioning_step`` on the
    inverse fourth roots, by an eigendecomposition :math:`\hat L = L_t / (1-\beta_2^t) = Q
    \Lambda Q^\top`,

    .. math:: \tilde L = Q\, (\Lambda - \min(\lambda_{\min}, 0) + \epsilon)^{-1/4} Q^\top
              \quad (\tilde R \text{ alike}).

    The step is Adam's :math:`A_t` before ``start_preconditioning_step``, then the Shampoo
    direction with Adam's norm (layer-wise grafting):

    .. math:: D_t = \tilde L \hat M \tilde R, \qquad
              u \leftarrow D_t\, \frac{\lVert A_t \rVert}{\lVert D_t \rVert + 10^{-16}} .

    ``use_bias_correction=False`` drops the three :math:`1-\beta^t` divisions (grafting then
    RMSProp's step). A side longer than ``max_preconditioner_dim`` keeps the identity
    (:math:`\tilde L = I`); a tensor with no preconditioned side takes Adam's step :math:`A_t`;
    a vector is one (Adam) unless ``precondition_1d``, then one side with exponent
    :math:`-1/2` (Meta's :math:`-1/(2 \cdot \text{order})`); a tensor of more dimensions is
    preconditioned as its ``out x (the rest)`` matrix. Defaults (Meta's, with its README's
    Adam-grafting recipe): ``betas=(0.9, 0.999)``, ``eps=1e-12``, ``grafting_beta2=None``
    (:math:`\beta_2`), ``grafting_eps=1e-8``, ``precondition_frequency=1``,
    ``start_preconditioning_step=None`` (``precondition_frequency``),
    ``max_preconditioner_dim=1024``, ``precondition_1d=False``, ``use_bias_correction=True``.
    The eigendecompositions run in the parameter's dtype (float32 for 16-bit ones).
    """

    checks = {"betas": _betas, "eps": checks.positive, "grafting_beta2": _optional_unit_interval,
              "grafting_eps": checks.positive, "precondition_frequency": checks.positive_integer,
              "start_preconditioning_step": _optional_positive_integer,
              "max_preconditioner_dim": checks.positive_integer, "precondition_1d": checks.boolean,
              "use_bias_correction": checks.boolean}
    state_keys = ("exp_avg", "exp_avg_sq", "left", "right", "left_inverse_root", "right_inverse_root")

    def __init__(self, betas=(0.9, 0.999), eps: float = 1e-12, grafting_beta2: float | None = None,
                 grafting_eps: float = 1e-8, precondition_frequency: int = 1,
                 start_preconditioning_step: int | None = None, max_preconditioner_dim: int = 1024,
                 precondition_1d: bool = False, use_bias_correction: bool = True) -> None:
        super().__init__(betas=betas, eps=eps, grafting_beta2=grafting_beta2, grafting_eps=grafting_eps,
                         precondition_frequency=precondition_frequency,
                         start_preconditioning_step=start_preconditioning_step,
                         max_preconditioner_dim=max_preconditioner_dim, precondition_1d=precondition_1d,
                         use_bias_correction=use_bias_correction)

    def init(self, params, hyperparams):
        return two_sided_state(params, "Shampoo", "inverse_root", hyperparams["max_preconditioner_dim"],
                               hyperparams["precondition_1d"])

    def coefficients(self, hyperparams, step, state):
        beta1, beta2 = hyperparams["betas"]
        grafting_beta2 = _grafting_beta2(hyperparams)

        def correction(beta):
            return 1 - beta**step if hyperparams["use_bias_correction"] and beta < 1 else 1.0

        return {"first_correction": correction(beta1), "grafting_correction": correction(grafting_beta2),
                "statistics_correction": correction(beta2)}

    def update(self, updates, state, params, hyperparams, step):
        beta1, beta2 = hyperparams["betas"]
        k = self.coefficients(hyperparams, step, state)
        start = hyperparams["start_preconditioning_step"] or hyperparams["precondition_frequency"]
        preconditioning = step >= start
        refresh = preconditioning and (step - start) % hyperparams["precondition_frequency"] == 0
        out: list[torch.Tensor] = [None] * len(updates)  # type: ignore[list-item]
        preconditioned = []  # (indices, sides, first moments, Adam's norms): stepped once the roots are refreshed
        refreshed = []  # (statistics, roots, exponent)
        for indices, shape in matrix_groups(updates):
            grad = batching.stack([matrix_view(updates[i]) for i in indices])
            exp_avg = batching.stacked(state["exp_avg"], indices, shape).lerp_(grad, 1 - beta1)
            exp_avg_sq = _accumulate(batching.stacked(state["exp_avg_sq"], indices, shape), grad * grad,
                                     _grafting_beta2(hyperparams))
            adam = exp_avg / k["first_correction"] / (exp_avg_sq / k["grafting_correction"]).sqrt_().add_(
                hyperparams["grafting_eps"])
            for i, u in zip(indices, batching.unstack(adam)):
                out[i] = u.view_as(updates[i])
            sides = stacked_sides(state, "inverse_root", indices, shape)
            if all(statistics is None for statistics, _ in sides):
                continue
            exponent = -0.5 if updates[indices[0]].ndim <= 1 else -0.25
            for dim, (statistics, roots) in enumerate(sides):
                if statistics is None:
                    continue
                _accumulate(statistics, grad @ grad.mT if dim == 0 else grad.mT @ grad, beta2)
                if refresh:
                    refreshed.append((statistics / k["statistics_correction"], roots, exponent))
            if preconditioning:
                preconditioned.append((indices, sides, exp_avg, torch.linalg.vector_norm(adam, dim=(-2, -1),
                                                                                         keepdim=True)))
        _refresh_roots(refreshed, hyperparams["eps"])
        for indices, sides, exp_avg, adam_norms in preconditioned:
            # A new tensor: at least one side is a matrix product.
            direction = _precondition(exp_avg / k["first_correction"], sides)
            direction.mul_(adam_norms / (torch.linalg.vector_norm(direction, dim=(-2, -1), keepdim=True)
                                         + _GRAFTING_GUARD))
            for i, u in zip(indices, batching.unstack(direction)):
                out[i] = u.view_as(updates[i])
        return updates.wrap(out)


def _grafting_beta2(hyperparams) -> float:
    return hyperparams["betas"][1] if hyperparams["grafting_beta2"] is None else hyperparams["grafting_beta2"]


def _accumulate(buffer: torch.Tensor, x: torch.Tensor, beta: float) -> torch.Tensor:
    """``buffer`` <- its EMA with ``x`` (weight 1 - beta), or the sum when beta = 1."""
    return buffer.add_(x) if beta == 1 else buffer.lerp_(x, 1 - beta)


def _refresh_roots(refreshed, eps: float) -> None:
    r"""Each ``roots`` stack <- :math:`Q (\Lambda - \min(\lambda_{\min}, 0) + \epsilon)^{exponent} Q^\top`
    of its ``statistics`` (``refreshed``: (statistics, roots, exponent)), the same-shaped
    ones of an exponent in one call (`by_shape`)."""
    for exponent in {exponent for _, _, exponent in refreshed}:
        group = [(statistics.to(working_dtype(statistics)), roots) for statistics, roots, e in refreshed
                 if e == exponent]
        results = by_shape(lambda statistics: _inverse_root(statistics, exponent, eps), [s for s, _ in group])
        for (_, roots), (root,) in zip(group, results):
            roots.copy_(root)


def _inverse_root(statistics: torch.Tensor, exponent: float, eps: float) -> tuple[torch.Tensor]:
    """The root of a matrix or of each of a stack, by its eigendecomposition: the
    eigenvalues shifted to be >= 0 (rounding makes them slightly negative), then regularized."""
    values, vectors = torch.linalg.eigh(statistics)
    values = values - values.amin(-1, keepdim=True).clamp(max=0) + eps
    return ((vectors * values.pow(exponent).unsqueeze(-2)) @ vectors.mT,)


def _precondition(x: torch.Tensor, sides) -> torch.Tensor:
    """:math:`\\tilde L X \\tilde R` (a side without an inverse root: the identity)."""
    (_, left), (_, right) = sides
    x = x if left is None else left @ x
    return x if right is None else x @ right
