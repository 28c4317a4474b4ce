"""Muon's parts: EMA momentum with Nesterov's look-ahead, Newton–Schulz orthogonalization,
and the shape-dependent step scale. Muon (`optimlab.muon`) chains them with decoupled
weight decay and the learning rate.

Muon is defined for matrices: the orthogonalization acts on a whole matrix, not on
elements, so it has no fused snippet; the fused path steps the momentum before it and the
scale, decay and learning rate after it by one kernel each (`optimlab.fused.engine`'s
``step_in_segments``). A parameter of more dimensions (a convolution's ``out x in x kh x kw``
filters) is orthogonalized as the matrix of its flattened trailing dimensions
(``out x in*kh*kw``), as in Keller Jordan's CIFAR-10 speedruns; `optimlab.Muon` takes
2-D parameters only, as torch.optim.Muon does.
"""

from __future__ import annotations

import math

import torch

from .. import checks
from ..fused.spec import Elementwise
from ..transform import Transform
from ..workspace import Workspace
from . import batching
from .momentum import ema

#: Keller Jordan's quintic coefficients (torch.optim.Muon's defaults).
NS_COEFFICIENTS = (3.4445, -4.775, 2.0315)
#: torch.optim.Muon raises for 100 steps or more ("for computational efficiency").
MAX_NS_STEPS = 100
ADJUST_LR_FNS = (None, "original", "match_rms_adamw")


def check_matrices(params, flattened: bool = False) -> None:
    """Raise ValueError unless every parameter is a real 2-D tensor (what torch.optim.Muon
    takes), or with ``flattened`` one of 2 or more dimensions."""
    for p in params:
        if p.is_complex():
            raise ValueError(f"params: Muon takes real parameters only, got one of dtype {p.dtype}")
        if p.ndim < 2 or (p.ndim > 2 and not flattened):
            kind = "2-D parameters or more (trailing dimensions flattened)" if flattened else "2-D parameters"
            raise ValueError(
                f"params: Muon takes {kind} only, got one of shape {tuple(p.shape)} "
                "(optimize the others with AdamW: optimlab.MuonWithAdamW does both)"
            )


def as_matrix(tensor: torch.Tensor) -> torch.Tensor:
    """A parameter as Muon's matrix: its first dimension by the product of the others."""
    return tensor if tensor.ndim == 2 else tensor.reshape(tensor.size(0), -1)


def _ns_coefficients(name, value) -> None:
    if not isinstance(value, (tuple, list)) or len(value) != 3:
        raise ValueError(f"{name} must be three numbers (a, b, c), got {value!r}")
    for i, coefficient in enumerate(value):
        checks._number(f"{name}[{i}]", coefficient)


def _ns_steps(name, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_NS_STEPS:
        raise ValueError(f"{name} must be an integer in [0, {MAX_NS_STEPS}), got {value!r}")


def _floating_dtype(name, value) -> None:
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise ValueError(f"{name} must be a floating-point torch.dtype, got {value!r}")


def _adjust_lr_fn(name, value) -> None:
    if value not in ADJUST_LR_FNS:
        raise ValueError(f"{name} must be None, 'original' or 'match_rms_adamw', got {value!r}")


class nesterov_ema(ema):
    r"""`ema` with Nesterov's look-ahead, Muon's momentum (Jordan et al. 2024; torch.optim.Muon):

    .. math:: v_0 = 0, \qquad v_t = \mu v_{t-1} + (1-\mu)\,u_t, \qquad
              u \leftarrow (1-\mu)\,u_t + \mu v_t \ \text{(Nesterov) or}\ v_t .

    Hyperparameters ``momentum`` (:math:`\mu`, default 0.95, in [0, 1)) and ``nesterov``
    (default True). The look-ahead is one more EMA step with the same gradient, not
    stored. This is `trace`'s sum form scaled by :math:`1-\mu`, a scale that Muon's
    orthogonalization removes; the EMA form is torch.optim.Muon's state.
    """

    checks = {**ema.checks, "nesterov": checks.boolean}

    def __init__(self, momentum: float = 0.95, nesterov: bool = True) -> None:
        Transform.__init__(self, momentum=momentum, nesterov=nesterov)

    def update(self, updates, state, params, hyperparams, step):
        velocity = super().update(updates, state, params, hyperparams, step)
        if not hyperparams["nesterov"]:
            return velocity
        return updates.lerp(velocity, hyperparams["momentum"])

    def elementwise(self, hyperparams):
        if not hyperparams["nesterov"]:
            return super().elementwise(hyperparams)
        return Elementwise("$ema = lerp($ema, u, $one_minus_beta); u = lerp(u, $ema, $beta);", buffers=("ema",))


class orthogonalize_by_newton_schulz(Transform):
    r"""Replace each matrix by its nearest semi-orthogonal one, approximately (Muon's core;
    Jordan et al. 2024, "Muon: An optimizer for hidden layers in neural networks";
    Bernstein & Newhouse 2024):

    .. math:: X_0 = U / \max(\lVert U\rVert_F, \varepsilon), \qquad
              X_{k+1} = a X_k + (b A_k + c A_k^2)\, X_k, \quad A_k = X_k X_k^\top,
              \qquad u \leftarrow X_K .

    With :math:`U = P\Sigma Q^\top`, each step maps every singular value :math:`\sigma` to
    :math:`a\sigma + b\sigma^3 + c\sigma^5`; the default coefficients (Keller Jordan's)
    push all of them into roughly [0.7, 1.2] in 5 steps, so :math:`X_K \approx PQ^\top`.
    A tall matrix (more rows than columns) is transposed first, so :math:`A_k` is the
    smaller Gram matrix (a stack of them iterates the same way with
    :math:`A_k = X_k^\top X_k` on the right, without copying the transpose). Hyperparameters ``ns_coefficients`` ((a, b, c), default
    (3.4445, -4.775, 2.0315)), ``ns_steps`` (K, default 5, < 100), ``eps`` (default 1e-7)
    and ``ns_dtype``: the dtype the iteration runs in, default ``torch.bfloat16`` as in
    torch.optim.Muon and the paper (its result is converted back to the parameter's
    dtype); ``torch.float64`` gives the exact-arithmetic iteration. Parameters of more than
    two dimensions are orthogonalized as ``out x (the rest)`` matrices. Matrices of one
    shape and dtype are iterated together as one batch (one ``baddbmm`` per product instead
    of one ``addmm`` per matrix: a transformer's same-shaped layers cost one launch), and
    small matrices of different shapes as one zero-padded batch where the calls saved cost
    more than the padding (`_padded_groups`, a rule of the shapes: the lab MLP's three
    weights), each within bfloat16 rounding of its own iteration; a matrix alone is
    iterated by torch.optim.Muon's operations, bit for bit. The stacks, the products and
    the updates it returns are scratch of an `optimlab.workspace.Workspace`, reused from
    step to step (on the CPU a fresh tensor's pages fault in at every step).
    """

    checks = {
        "ns_coefficients": _ns_coefficients,
        "ns_steps": _ns_steps,
        "eps": checks.positive,
        "ns_dtype": _floating_dtype,
    }

    def __init__(self, ns_coefficients=NS_COEFFICIENTS, eps: float = 1e-7, ns_steps: int = 5,
                 ns_dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__(ns_coefficients=ns_coefficients, eps=eps, ns_steps=ns_steps, ns_dtype=ns_dtype)
        self.workspace = Workspace()

    def init(self, params, hyperparams):
        check_matrices(params, flattened=True)
        return {}

    def update(self, updates, state, params, hyperparams, step):
        matrices = [as_matrix(u) for u in updates]
        same = batching.groups(matrices)
        alone = [indices[0] for indices in same if len(indices) == 1]
        batches = [indices for indices in same if len(indices) > 1] + _padded_groups(matrices, alone)
        results: list[torch.Tensor] = [None] * len(matrices)  # type: ignore[list-item]
        for indices in batches:
            for i, x in zip(indices, self._orthogonalize([matrices[i] for i in indices], hyperparams,
                                                         updates[indices[0]].dtype)):
                results[i] = x.view_as(updates[i])
        return updates.wrap(results)

    def _orthogonalize(self, matrices: list[torch.Tensor], hyperparams, result_dtype: torch.dtype) -> list[torch.Tensor]:
        """The iteration's results for ``matrices``: one, of one shape (a stack), or of
        several shapes (each oriented wide, transposing a tall one, in the corner of a
        zero-padded stack: the zero rows and columns stay zero and leave each matrix's
        iteration as it is). They are scratch (valid for this step, as `Transform.update`
        says), in ``result_dtype``, contiguous (the kernel of the parts after it takes them)."""
        dtype, device, workspace = hyperparams["ns_dtype"], matrices[0].device, self.workspace
        padded = len(matrices) > 1 and len({m.shape for m in matrices}) > 1
        if len(matrices) == 1:
            x = matrices[0]
        elif not padded:  # stacked and converted in one pass, into scratch the iteration overwrites
            x = torch.stack(matrices, out=workspace.get("stack", (len(matrices), *matrices[0].shape), dtype, device))
        else:
            wide = [m.mT if m.size(0) > m.size(1) else m for m in matrices]
            shape = (len(wide), max(m.size(0) for m in wide), max(m.size(1) for m in wide))
            x = workspace.get("padded", shape, dtype, device).zero_()
            for corner, m in zip(x, wide):
                corner[:m.size(0), :m.size(1)].copy_(m)
        x = _newton_schulz(x, hyperparams["ns_coefficients"], hyperparams["ns_steps"], hyperparams["eps"], dtype,
                           workspace)
        if not padded:
            result = workspace.get("result", x.shape, result_dtype, device).copy_(x)
            return [result] if len(matrices) == 1 else list(result.unbind())
        return [workspace.get("result", m.shape, result_dtype, device).copy_(
                    corner[:m.size(1), :m.size(0)].mT if m.size(0) > m.size(1) else corner[:m.size(0), :m.size(1)])
                for corner, m in zip(x, matrices)]


#: What a torch call costs beside its arithmetic, in multiply-adds: ~20 us a call on an
#: Intel CPU whose bfloat16 matmuls (AMX) do ~0.8 multiply-adds per picosecond, halved for
#: slower matmuls. `_padded_groups` weighs calls against work by it. On an AVX-512 AMD CPU
#: (~0.3 per ps) it still chooses best for the lab MLP: one padded group steps in 1.46 ms,
#: two in 1.52, none in 1.76 (`CALL_WORK` toggled, interleaved).
CALL_WORK = 1 << 23


def _padded_groups(matrices: list[torch.Tensor], alone: list[int]) -> list[list[int]]:
    """The matrices of different shapes (indices ``alone``) in groups iterated as one
    zero-padded stack each: sorted by shape (oriented wide), a matrix joins the group
    before it where that costs less than iterating it apart (three calls per step of the
    iteration, `CALL_WORK` each, against the padded products' multiply-adds). A rule of
    shapes only, so a model's matrices always group the same way."""
    def work(rows: int, columns: int) -> int:  # a step's multiply-adds: X X^T, A^2, (bA + cA^2) X
        return 2 * rows * rows * columns + rows ** 3

    def cost(group: list[int]) -> int:
        rows = max(min(matrices[i].shape) for i in group)
        columns = max(max(matrices[i].shape) for i in group)
        return 3 * CALL_WORK + len(group) * work(rows, columns)

    groups: list[list[int]] = []
    kinds: dict[tuple, list[int]] = {}
    for i in alone:
        kinds.setdefault((matrices[i].dtype, matrices[i].device), []).append(i)
    for indices in kinds.values():
        kind: list[list[int]] = []
        for i in sorted(indices, key=lambda i: (min(matrices[i].shape), max(matrices[i].shape))):
            if kind and cost(kind[-1] + [i]) <= cost(kind[-1]) + cost([i]):
                kind[-1].append(i)
            else:
                kind.append([i])
        groups += kind
    return groups


def _newton_schulz(x: torch.Tensor, coefficients, steps: int, eps: float, dtype: torch.dtype,
                   workspace: Workspace) -> torch.Tensor:
    """The iteration in ``dtype`` on a matrix, or on a stack of same-shaped ones (each
    normalized by its own norm; the stack is scratch, overwritten, and so are its products,
    in ``workspace``: the result may be scratch too)."""
    a, b, c = coefficients
    if x.ndim == 2:  # torch.optim.Muon's operations (in bfloat16, its bits): a tall matrix transposed
        x = x.to(dtype)
        tall = x.size(0) > x.size(1)
        x = x.mT if tall else x
        x = x / x.norm().clamp(min=eps)
        for _ in range(steps):
            gram = x @ x.mT
            x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
        return x.mT if tall else x
    x.div_(x.norm(dim=(-2, -1), keepdim=True).clamp(min=eps))
    # A stack of tall matrices keeps the smaller Gram matrix on the right, A = X^T X and
    # X <- a X + X (b A + c A^2): the transposed iteration, without a transposed copy.
    right = x.size(-2) > x.size(-1)
    side = x.size(-1) if right else x.size(-2)
    gram = workspace.get("gram", (x.size(0), side, side), dtype, x.device)
    polynomial = workspace.get("polynomial", gram.shape, dtype, x.device)
    other = workspace.get("other", x.shape, dtype, x.device)
    for _ in range(steps):
        if right:  # A = X^T X, X <- a X + X (b A + c A^2)
            torch.bmm(x.mT, x, out=gram)
            torch.baddbmm(gram, gram, gram, beta=b, alpha=c, out=polynomial)
            torch.baddbmm(x, x, polynomial, beta=a, out=other)
        else:  # A = X X^T, X <- a X + (b A + c A^2) X
            torch.bmm(x, x.mT, out=gram)
            torch.baddbmm(gram, gram, gram, beta=b, alpha=c, out=polynomial)
            torch.baddbmm(x, polynomial, x, beta=a, out=other)
        x, other = other, x
    return x


class scale_by_shape(Transform):
    r"""Muon's step size per matrix shape :math:`m \times n` (torch.optim.Muon's ``adjust_lr_fn``):

    .. math:: u \leftarrow s\,u, \qquad s = \sqrt{\max(1, m/n)} \ \text{("original", Keller Jordan's)}
              \quad\text{or}\quad s = 0.2\sqrt{\max(m, n)} \ \text{("match_rms_adamw")} .

    An orthogonal :math:`m \times n` update has RMS :math:`1/\sqrt{\max(m,n)}`; "original"
    evens it out across tall matrices, "match_rms_adamw" (Liu et al. 2025, "Muon is
    Scalable for LLM Training") sets it to 0.2, AdamW's typical update RMS, so Muon can
    reuse AdamW's learning rate and weight decay (a parameter of more dimensions counts as
    its ``out x (the rest)`` matrix). Hyperparameter ``adjust_lr_fn``, default
    None ("original"). Weight decay is not scaled: put this before `add_decayed_weights`.
    """

    checks = {"adjust_lr_fn": _adjust_lr_fn}

    def __init__(self, adjust_lr_fn: str | None = None) -> None:
        super().__init__(adjust_lr_fn=adjust_lr_fn)

    def tensor_coefficients(self, hyperparams, params):
        return {"scale": [_shape_scale(p.shape, hyperparams["adjust_lr_fn"]) for p in params]}

    def update(self, updates, state, params, hyperparams, step):
        return updates * self.tensor_coefficients(hyperparams, params)["scale"]

    def elementwise(self, hyperparams):
        return Elementwise("u = u * $scale;", tensor_coefficients=("scale",))


def _shape_scale(shape, adjust_lr_fn: str | None) -> float:
    rows, columns = shape[0], math.prod(shape[1:])
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, columns))
    return math.sqrt(max(1, rows / columns))
