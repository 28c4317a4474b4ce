"""PSGD-Kron: preconditioned SGD with a Kronecker-factored preconditioner fitted on a Lie group."""

from __future__ import annotations

import functools
import math

import torch

from .. import checks
from ..transform import Transform
from ..workspace import Workspace
from . import batching
from .soap import working_dtype

#: The most dimensions a parameter may have (one factor each), as in kron_torch.
MAX_ORDER = 13
MEMORY_SAVE_MODES = (None, "one_diag", "smart_one_diag", "all_diag")
#: The schedule of ``precond_update_prob=None`` (kron_torch's ``precond_update_prob_schedule``):
#: 1 for the first FLAT_START steps, then decaying by exp(-DECAY) a step down to MIN_PROB.
MAX_PROB, MIN_PROB, DECAY, FLAT_START = 1.0, 0.03, 1e-3, 500
#: The RMS the preconditioned update is clipped to (kron_torch's constant).
CLIP_RMS = 1.1
# The offset of the normalizations (kron_torch's: bfloat16's smallest normal number).
_TINY = torch.finfo(torch.bfloat16).tiny
_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _update_probability(name, value) -> None:
    if value is not None:
        checks.unit_interval(name, value)


def _memory_save_mode(name, value) -> None:
    if value not in MEMORY_SAVE_MODES:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, MEMORY_SAVE_MODES))}, got {value!r}")


def _seed(name, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")


class scale_by_kron(Transform):
    r"""PSGD-Kron (Li 2015, "Preconditioned Stochastic Gradient Descent"; Li 2018,
    "Preconditioner on Matrix Lie Group for SGD"; the Kronecker form of Evan Walters'
    kron_torch and pytorch-optimizer's ``Kron``). Momentum, debiased,

    .. math:: m_t = \beta m_{t-1} + (1-\beta) g_t, \qquad \hat m_t = m_t / (1-\beta^t),

    is preconditioned by :math:`P = Q^\top Q`, :math:`Q = Q_1 \otimes \dots \otimes Q_d` (one
    factor per dimension of the parameter: upper triangular, or diagonal), and clipped to RMS 1.1:

    .. math:: u = P \hat m_t \cdot \min\!\big(1, 1.1 / (\operatorname{rms}(P \hat m_t) + 10^{-6})\big).

    :math:`Q` is fitted to whiten the gradients, :math:`E[Pg\,g^\top P] \approx P\,E[vv^\top] = P`,
    by steps on its Lie group from :math:`h = \hat m_t` (or :math:`g_t`) and a probe
    :math:`v \sim N(0, I)`: with :math:`A = Q h` and :math:`B = Q^{-\top} v`, for each factor
    (:math:`X_{(i)}` the mode-:math:`i` unfolding),

    .. math:: T_1 = A_{(i)} A_{(i)}^\top, \quad T_2 = B_{(i)} B_{(i)}^\top, \qquad
              Q_i \leftarrow Q_i - \frac{\eta_Q}{\lVert T_1 + T_2 \rVert + \epsilon}
                  \operatorname{triu}(T_1 - T_2)\, Q_i

    (a diagonal factor: the diagonals of :math:`T_1, T_2`, the max norm; a triangular one: a
    lower bound of the spectral norm, Li's power-iteration estimate), after which the factors
    are rescaled to equal max norms (their product unchanged). The preconditioner updates at
    step :math:`t` when :math:`\lfloor \sum_{k \le t} p_k \rfloor` grows (heavyball's rule;
    :math:`p_k` = ``precond_update_prob``, or None: 1 for 500 steps, then
    :math:`e^{-0.001 (k - 501)}` down to 0.03). The probe of each parameter is drawn from its own
    seeded generator (``probe_seed`` in its state, from ``seed``), so runs and resumed runs
    repeat exactly.

    A side is triangular when longer than 1, at most ``max_size_triangular`` long, the
    parameter has at least ``min_ndim_triangular`` dimensions and ``memory_save_mode`` does
    not make it diagonal (``"one_diag"``: the longest side, the last of equals;
    ``"smart_one_diag"``: the longest if strictly longest; ``"all_diag"``: every side). The
    factors' layout is set at the first step. Defaults (pytorch-optimizer's and kron_torch's):
    ``momentum=0.9``, ``precond_lr=0.1``, ``precond_init_scale=1.0`` (:math:`Q = sI`),
    ``precond_update_prob=None``, ``max_size_triangular=8192``, ``min_ndim_triangular=2``,
    ``memory_save_mode=None``, ``momentum_into_precond_update=True``; ``seed=0``. The factors
    are kept in the parameter's dtype and computed in float32 for 16-bit ones.
    """

    checks = {"momentum": checks.decay_rate, "precond_lr": checks.positive, "precond_init_scale": checks.positive,
              "precond_update_prob": _update_probability, "max_size_triangular": checks.positive_integer,
              "min_ndim_triangular": checks.positive_integer, "memory_save_mode": _memory_save_mode,
              "momentum_into_precond_update": checks.boolean, "seed": _seed}
    state_keys = ("momentum_buffer", "probe_seed", *(f"factor_{i}" for i in range(MAX_ORDER)))

    def __init__(self, momentum: float = 0.9, precond_lr: float = 0.1, precond_init_scale: float = 1.0,
                 precond_update_prob: float | None = None, max_size_triangular: int = 8192,
                 min_ndim_triangular: int = 2, memory_save_mode: str | None = None,
                 momentum_into_precond_update: bool = True, seed: int = 0) -> None:
        super().__init__(momentum=momentum, precond_lr=precond_lr, precond_init_scale=precond_init_scale,
                         precond_update_prob=precond_update_prob, max_size_triangular=max_size_triangular,
                         min_ndim_triangular=min_ndim_triangular, memory_save_mode=memory_save_mode,
                         momentum_into_precond_update=momentum_into_precond_update, seed=seed)
        self._generators: dict[torch.device, torch.Generator] = {}
        self.workspace = Workspace()

    def init(self, params, hyperparams):
        state: dict[str, list] = {key: [None] * len(params) for key in self.state_keys}
        for p in params:
            if p.is_complex():
                raise ValueError(f"params: PSGD-Kron takes real parameters only, got one of dtype {p.dtype}")
            if p.ndim > MAX_ORDER:
                raise ValueError(f"params: PSGD-Kron takes up to {MAX_ORDER} dimensions, got a {p.ndim}-D parameter")
        for indices in batching.step_groups(params):  # each buffer of a group: the slices of one stack
            like = params[indices[0]]
            sides = _triangular_sides(like.shape, hyperparams)
            scale = hyperparams["precond_init_scale"] ** (1 / len(sides))
            for i, (size, triangular) in enumerate(sides):
                initial = (torch.eye(size, dtype=like.dtype, device=like.device) if triangular
                           else like.new_ones(size)).mul_(scale)
                factors = batching.zeros(len(indices), initial.shape, like)
                for index, factor in zip(indices, factors):
                    state[f"factor_{i}"][index] = factor.copy_(initial)
            for index, buffer in zip(indices, batching.zeros(len(indices), like.shape, like)):
                state["momentum_buffer"][index] = buffer
        state["probe_seed"] = [_splitmix64(hyperparams["seed"] + index * _GOLDEN) for index in range(len(params))]
        return {key: params.wrap(value) for key, value in state.items()}

    def coefficients(self, hyperparams, step, state):
        return {"debias": 1 - hyperparams["momentum"] ** step}

    def update(self, updates, state, params, hyperparams, step):
        momentum = hyperparams["momentum"]
        debias = self.coefficients(hyperparams, step, state)["debias"]
        refit = _updates_preconditioner(step, hyperparams["precond_update_prob"])
        out: list[torch.Tensor] = [None] * len(updates)  # type: ignore[list-item]
        # Parameters of one shape have one layout of factors: each group steps as one stack.
        for indices in batching.step_groups(updates):
            g = updates[indices[0]]
            shape, dtype, batched = _shape(g), working_dtype(g), int(len(indices) > 1)
            factors = [batching.stacked(state[key], indices, state[key][indices[0]].shape)
                       for key in _factor_keys(state, indices[0])]
            grads = batching.stack([updates[i].reshape(shape) for i in indices])
            m = batching.stacked(state["momentum_buffer"], indices, shape).lerp_(grads, 1 - momentum)
            m_hat = (m / debias).to(dtype)
            working = [f.to(dtype) for f in factors]
            if refit:
                fitted = m_hat if hyperparams["momentum_into_precond_update"] else grads.to(dtype)
                probe = batching.stack([self.probe(state["probe_seed"][i], step, item)
                                        for i, item in zip(indices, batching.unstack(fitted, len(shape)))])
                _balance(working, batched)
                _fit(working, fitted, probe, hyperparams["precond_lr"], self.workspace, batched)
                for factor, new in zip(factors, working):
                    if new is not factor:
                        factor.copy_(new)
            u = _precondition(working, m_hat, batched)
            u = u * torch.clamp(CLIP_RMS / (_per_item(u.square(), batched).mean(-1).sqrt() + 1e-6), max=1.0).view(
                _broadcast(u, batched))
            for i, item in zip(indices, batching.unstack(u, len(shape))):
                out[i] = item.to(g.dtype).reshape(g.shape)
        return updates.wrap(out)

    def probe(self, seed: int, step: int, like: torch.Tensor) -> torch.Tensor:
        """The probe :math:`v \\sim N(0, I)` of step ``step`` for the parameter with ``seed``:
        torch's normal numbers from a generator seeded by ``splitmix64(seed + step * golden)``."""
        generator = self._generators.get(like.device)
        if generator is None:
            generator = self._generators[like.device] = torch.Generator(like.device)
        generator.manual_seed(_splitmix64(seed + step * _GOLDEN))
        return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    """A 0-d tensor as a 1-vector (one diagonal factor of size 1)."""
    return tuple(t.shape) or (1,)


def _triangular_sides(shape, hyperparams) -> list[tuple[int, bool]]:
    """Each side's size and whether its factor is triangular."""
    sizes = list(shape) or [1]
    diagonal = [False] * len(sizes)
    mode = hyperparams["memory_save_mode"]
    longest = max(range(len(sizes)), key=lambda i: (sizes[i], i))  # the last of the longest
    strictly_longest = len(sizes) >= 2 and sorted(sizes)[-1] > sorted(sizes)[-2]
    if mode == "all_diag":
        diagonal = [True] * len(sizes)
    elif mode == "one_diag" or (mode == "smart_one_diag" and strictly_longest):
        diagonal[longest] = True
    return [(size, 1 < size <= hyperparams["max_size_triangular"] and len(shape) >= hyperparams["min_ndim_triangular"]
             and not diag) for size, diag in zip(sizes, diagonal)]


def _updates_preconditioner(step: int, probability: float | None) -> bool:
    """Whether step ``step`` (1-based) refits the preconditioner: when the cumulative
    probability passes an integer."""
    return math.floor(_cumulative_probability(step, probability)) > math.floor(
        _cumulative_probability(step - 1, probability))


def _cumulative_probability(steps: int, probability: float | None) -> float:
    """:math:`\\sum_{k=1}^{steps} p_k` (the schedule's in closed form)."""
    if probability is not None:
        return steps * probability
    flat = min(steps, FLAT_START + 1)
    ratio = math.exp(-DECAY)
    decaying = int(math.log(MAX_PROB / MIN_PROB) / DECAY)  # steps of the decay above MIN_PROB
    tail = min(max(steps - 1 - FLAT_START, 0), decaying)
    rest = max(steps - 1 - FLAT_START - decaying, 0)
    return MAX_PROB * (flat + ratio * (1 - ratio**tail) / (1 - ratio)) + MIN_PROB * rest


# The helpers below take one parameter's tensors or, ``batched`` (1), a stack of them along a
# first dimension: side ``dim`` of a parameter is axis ``dim + batched``.

def _factor_keys(state, index: int) -> list[str]:
    """The state keys of parameter ``index``'s factors, in order of its sides."""
    return [key for i in range(MAX_ORDER) if (key := f"factor_{i}") in state and state[key][index] is not None]


def _per_item(x: torch.Tensor, batched: int) -> torch.Tensor:
    """``x`` flattened per parameter: (stack size, elements) batched, (elements,) otherwise."""
    return x.flatten(batched)


def _broadcast(x: torch.Tensor, batched: int) -> tuple[int, ...]:
    """The shape a per-parameter scalar takes to broadcast over ``x``."""
    return (-1,) * batched + (1,) * (x.ndim - batched)


def _diagonal(factor: torch.Tensor, x: torch.Tensor, axis: int, batched: int) -> torch.Tensor:
    """A diagonal factor (or a stack of them) shaped to scale ``x`` along ``axis``."""
    return factor.view([factor.size(0) if d < batched else -1 if d == axis else 1 for d in range(x.ndim)])


def _along(x: torch.Tensor, dim: int, factor: torch.Tensor, batched: int) -> torch.Tensor:
    """``factor`` applied to side ``dim`` of ``x`` (a matrix: contracted with its columns)."""
    axis = dim + batched
    if factor.ndim == 1 + batched:
        return x * _diagonal(factor, x, axis, batched)
    if x.ndim == 2 + batched:  # a matrix (or a stack): one product
        return factor @ x if dim == 0 else x @ factor.mT
    moved = x.movedim(axis, batched)
    contracted = factor @ moved.reshape(*moved.shape[:batched + 1], -1)
    return contracted.view(moved.shape).movedim(batched, axis)


def _precondition(factors, x: torch.Tensor, batched: int) -> torch.Tensor:
    """:math:`Q^\\top Q x`."""
    for dim, factor in enumerate(factors):
        x = _along(_along(x, dim, factor, batched), dim, factor.mT if factor.ndim == 2 + batched else factor, batched)
    return x


def _solve_along(x: torch.Tensor, dim: int, factor: torch.Tensor, batched: int) -> torch.Tensor:
    """:math:`Q_i^{-\\top}` applied to side ``dim`` of ``x``."""
    axis = dim + batched
    if factor.ndim == 1 + batched:
        return x / _diagonal(factor, x, axis, batched)
    if axis == x.ndim - 1 > 0:  # the last side of a matrix or more: the solve's own layout
        return torch.linalg.solve_triangular(factor, x, upper=True, left=False)
    moved = x.movedim(axis, -1)
    solved = torch.linalg.solve_triangular(factor, moved.reshape(*moved.shape[:batched], -1, moved.shape[-1]),
                                           upper=True, left=False)
    return solved.view(moved.shape).movedim(-1, axis)


def _fit(factors, h: torch.Tensor, probe: torch.Tensor, lr: float, workspace: Workspace, batched: int) -> None:
    """One Lie-group step of every factor (in place) from the pair (h, v); a triangular
    factor's n x n products in ``workspace``'s scratch (a fresh 1024 x 1024 one costs as
    much in page faults as its arithmetic, at every step)."""
    a, b = h, probe
    for dim, factor in enumerate(factors):
        a, b = _along(a, dim, factor, batched), _solve_along(b, dim, factor, batched)
    steps = []
    for dim, factor in enumerate(factors):
        axis, lead = dim + batched, a.shape[:batched]
        a_i = a.movedim(axis, batched).reshape(*lead, a.shape[axis], -1)
        b_i = b.movedim(axis, batched).reshape(*lead, b.shape[axis], -1)
        if factor.ndim == 1 + batched:
            t1, t2 = a_i.square().sum(-1), b_i.square().sum(-1)
            steps.append((t1 - t2).mul_(factor).mul_(lr / ((t1 + t2).abs().amax(-1, keepdim=True) + _TINY)))
            continue
        scratch = functools.partial(workspace.get, shape=factor.shape, dtype=factor.dtype, device=factor.device)
        t1 = torch.matmul(a_i, a_i.mT, out=scratch("t1"))
        t2 = torch.matmul(b_i, b_i.mT, out=scratch("t2"))
        bound = _spectral_norm_lower_bound(torch.add(t1, t2, out=scratch("sum")), scratch("work"))
        upper = torch.triu(torch.sub(t1, t2, out=t1), out=t2).mul_(lr / (bound + _TINY))
        steps.append(torch.matmul(upper, factor, out=scratch(f"step {dim}")))
    for factor, step in zip(factors, steps):
        factor.sub_(step)


def _spectral_norm_lower_bound(a: torch.Tensor, work: torch.Tensor) -> torch.Tensor:
    """A lower bound of the spectral norm of the symmetric ``a`` (or of each of a stack;
    shaped to broadcast over it): one power iteration from its largest row, on ``a`` scaled
    to max norm 1 (Li's ``norm_lower_bound``); ``a`` and ``work`` (a tensor like it) are
    overwritten."""
    scale = torch.abs(a, out=work).amax((-2, -1), keepdim=True)
    a = a.div_(torch.where(scale > 0, scale, 1.0))
    largest = torch.argmax(torch.square(a, out=work).sum(-1), dim=-1, keepdim=True)
    row = a.take_along_dim(largest.unsqueeze(-1), dim=-2)
    x = a @ row.mT
    x = x / torch.linalg.vector_norm(x, dim=(-2, -1), keepdim=True).clamp_min(torch.finfo(a.dtype).tiny)
    return scale * torch.linalg.vector_norm(a.mT @ x, dim=(-2, -1), keepdim=True)


def _balance(factors, batched: int) -> None:
    """Rescale the factors, in place, to the same max norm (their Kronecker product unchanged)."""
    if len(factors) < 2:
        return
    norms = torch.stack([_per_item(f.abs(), batched).amax(-1) for f in factors])
    scales = norms.prod(0) ** (1 / len(factors)) / norms
    for factor, scale in zip(factors, scales):
        factor.mul_(scale.view(_broadcast(factor, batched)))


def _splitmix64(x: int) -> int:
    """Steele et al.'s 64-bit finalizer: well-spread generator seeds from nearby integers."""
    x = (x + _GOLDEN) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)
