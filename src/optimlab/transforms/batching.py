"""Same-shaped matrices stepped together: their state in one stack, their products and
decompositions one torch call per shape.

SOAP, Shampoo and PSGD-Kron step each matrix by matrix products and decompositions whose
arithmetic is per matrix. The matrices of one shape, dtype and device go to torch as one
stack: one call (one launch on a GPU; on the CPU one dispatch, and torch's batched QR is
10-30 % faster than a loop for 64-1024 wide matrices). Products and decompositions of a
stack agree with each matrix's own calls to rounding, not bit for bit (a batched product
of small matrices takes another kernel; MKL rounds by where a matrix lies in memory), so
a matrix alone keeps torch's 2-D calls (`stack`, `stacked`). To stack without copying, the
per-parameter state of such a group is kept as the slices of one tensor per buffer
(`zeros`); a checkpoint loaded without that layout is re-stacked once, at its first step
(`stacked`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from ..tensorlist import TensorList


#: The most multiply-adds of a stacked matrix's largest product (:math:`mn \max(m, n)`;
#: 2^22: a 160 x 160 or 64 x 256 matrix). Below, the few microseconds a torch call costs
#: besides its arithmetic are much of a matrix's step, and a stack steps 1.1-5x faster
#: (32-160 wide matrices, on this project's 2-core CPU); above, the calls saved are a few
#: percent of the arithmetic, within the cost of a stack's larger temporaries (from 0.75x
#: to 1.06x at 200-256 wide, 1.07-1.36x for 27 matrices of 200 x 800), so such matrices
#: step one by one. A rule of shapes only, so a model's matrices always step the same way.
STACK_WORK = 1 << 22


def groups(tensors: Sequence[torch.Tensor]) -> list[list[int]]:
    """The indices of ``tensors`` by shape, dtype and device, each group in order."""
    found: dict[tuple, list[int]] = {}
    for i, t in enumerate(tensors):
        found.setdefault((t.shape, t.dtype, t.device), []).append(i)
    return list(found.values())


def step_groups(tensors: Sequence[torch.Tensor]) -> list[list[int]]:
    """`groups` of ``tensors`` to step as one stack each: those of small tensors
    (`STACK_WORK`; a tensor's work counted as its elements times its longest side), the
    others one by one."""
    stacks: list[list[int]] = []
    for indices in groups(tensors):
        t = tensors[indices[0]]
        small = t.numel() * max(t.shape, default=1) <= STACK_WORK
        stacks += [indices] if small else [[i] for i in indices]
    return stacks


def zeros(count: int, shape: Sequence[int], like: torch.Tensor) -> list[torch.Tensor]:
    """``count`` zero tensors of ``shape`` (``like``'s dtype and device): the slices of one
    stack, as `stacked` takes them without a copy."""
    return list(like.new_zeros(count, *shape).unbind())


def stack(matrices: Sequence[torch.Tensor]) -> torch.Tensor:
    """``matrices`` (of one shape) as one stack; one matrix as itself (see `stacked`)."""
    return matrices[0] if len(matrices) == 1 else torch.stack(matrices)


def stacked(buffers: TensorList, indices: Sequence[int], shape: Sequence[int]) -> torch.Tensor:
    """The buffers at ``indices`` as one ``(len(indices), *shape)`` stack: a view of their
    memory where they are its consecutive slices (as `zeros` made them); otherwise a new
    stack, whose slices replace them in ``buffers`` (the optimizer stores replaced buffers),
    so that later steps find them stacked. One buffer is a ``shape`` view of itself, not a
    stack of one: a matrix alone steps by torch's 2-D products, whose bits other
    implementations share (a batched product of small matrices rounds otherwise)."""
    if len(indices) == 1:
        t = buffers[indices[0]]
        if t.shape == shape:  # a parameter's own matrix (the common case, without a new view)
            return t
        if t.is_contiguous():
            return t.view(shape)
    tensors = [buffers[i] for i in indices]
    if _consecutive(tensors, math.prod(shape)):
        return tensors[0].as_strided((len(tensors), *shape), _contiguous_strides((len(tensors), *shape)))
    result = torch.stack([t.reshape(shape) for t in tensors])
    for i, t, part in zip(indices, tensors, result.unbind()):
        buffers.tensors[i] = part.view(t.shape)
    return result[0] if len(tensors) == 1 else result


def unstack(result: torch.Tensor, item_ndim: int = 2) -> tuple[torch.Tensor, ...]:
    """The items (matrices, or tensors of ``item_ndim`` dimensions) of a `stack`, or the one item."""
    if result.ndim == item_ndim:
        return (result,)
    return result.view(-1, *result.shape[result.ndim - item_ndim:]).unbind()


def _consecutive(tensors: Sequence[torch.Tensor], size: int) -> bool:
    """Whether ``tensors`` are contiguous, of ``size`` elements each, one after the other in
    the memory of the first one's storage (which then holds them all: allocations do not overlap)."""
    first = tensors[0]
    step = size * first.element_size()
    end = first.data_ptr() + len(tensors) * step
    storage = first.untyped_storage()
    return (end <= storage.data_ptr() + storage.nbytes()
            and all(t.is_contiguous() and t.numel() == size and t.dtype == first.dtype
                    and t.data_ptr() == first.data_ptr() + k * step for k, t in enumerate(tensors)))


def _contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    strides = [1]
    for size in reversed(shape[1:]):
        strides.insert(0, strides[0] * size)
    return tuple(strides)


def by_shape(function: Callable[[torch.Tensor], tuple[torch.Tensor, ...]],
             tensors: Sequence[torch.Tensor]) -> list[tuple[torch.Tensor, ...]]:
    """``function(t)`` for each ``t`` of ``tensors``, a matrix or a stack of same-shaped
    ones (a `stack`), the matrices of one shape, dtype and device across all of them in one
    call: ``function`` takes a matrix or a stack of them and returns a tuple of tensors
    batched as its input (``torch.linalg.eigh``, ``torch.linalg.qr``); each result is batched
    as its ``t``. LAPACK factors each matrix of a stack by itself; the results agree with
    each matrix's own call to rounding (MKL's rounding depends on a matrix's alignment in memory)."""
    items = [unstack(t) for t in tensors]
    matrices = [m for matrices in items for m in matrices]
    results: list[tuple[torch.Tensor, ...]] = [()] * len(matrices)
    for indices in groups(matrices):
        if len(indices) == 1:
            results[indices[0]] = tuple(function(matrices[indices[0]]))
            continue
        stack = function(torch.stack([matrices[i] for i in indices]))
        for i, *parts in zip(indices, *(part.unbind() for part in stack)):
            results[i] = tuple(parts)
    batched, start = [], 0
    for t, parts in zip(tensors, items):
        own = results[start:start + len(parts)]
        start += len(parts)
        batched.append(own[0] if t.ndim == 2 else tuple(torch.stack(part) for part in zip(*own)))
    return batched
