"""A list of tensors that computes like one tensor.

Transforms are written once, as math on a `TensorList`: ``m.lerp_(g, 1 - b1)`` reads
like the paper whether the list holds one tensor or two hundred. The list decides how
the math runs:

* ``foreach=True``: each operation is one call of torch's multi-tensor ``_foreach_*``
  kernels over every tensor (the default, torch.optim's "foreach" path);
* ``foreach=False``: each operation loops over the tensors with the plain tensor method
  (torch.optim's "for-loop" path; also the one that handles sparse tensors).

Scalars may be Python numbers or one number per tensor (a list).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

Scalar = float | int | Sequence[float]


class TensorList:
    """Tensors that take part in every operation together, like one big tensor."""

    __slots__ = ("tensors", "foreach")

    def __init__(self, tensors: Sequence[Tensor], foreach: bool = True) -> None:
        self.tensors = list(tensors)
        self.foreach = foreach

    def __len__(self) -> int:
        return len(self.tensors)

    def __iter__(self) -> Iterator[Tensor]:
        return iter(self.tensors)

    def __getitem__(self, index: int) -> Tensor:
        return self.tensors[index]

    def __repr__(self) -> str:
        return f"TensorList({len(self)} tensors, foreach={self.foreach})"

    def wrap(self, tensors: Sequence[Tensor]) -> TensorList:
        """A new list of ``tensors`` that runs the way this one does."""
        return TensorList(tensors, self.foreach)

    @property
    def is_sparse(self) -> bool:
        return any(t.is_sparse for t in self.tensors)

    # Construction ----------------------------------------------------------------
    def zeros_like(self) -> TensorList:
        return self.wrap([torch.zeros_like(t, memory_format=torch.preserve_format) for t in self.tensors])

    def full_like(self, value: float) -> TensorList:
        return self.wrap([torch.full_like(t, value, memory_format=torch.preserve_format) for t in self.tensors])

    def maximum_(self, other: TensorList) -> TensorList:
        """Elementwise max, in place (torch.Tensor has no maximum_)."""
        if self.foreach:
            torch._foreach_maximum_(self.tensors, other.tensors)
        else:
            for t, o in zip(self.tensors, other.tensors):
                torch.maximum(t, o, out=t)
        return self

    def clone(self) -> TensorList:
        return self.wrap([t.clone() for t in self.tensors])

    # Reductions --------------------------------------------------------------------
    def norms(self, ord: float = 2.0) -> list[Tensor]:
        """The norm of each tensor, as 0-d tensors."""
        if self.foreach and not self.is_sparse:
            return list(torch._foreach_norm(self.tensors, ord))
        return [torch.linalg.vector_norm(_dense_values(t), ord) for t in self.tensors]

    def global_norm(self) -> Tensor:
        """The 2-norm of all elements of all tensors together."""
        norms = self.norms()
        if not norms:
            return torch.zeros(())
        try:
            stacked = torch.stack(norms)
        except RuntimeError:  # tensors on several devices
            stacked = torch.stack([n.to(norms[0].device) for n in norms])
        return torch.linalg.vector_norm(stacked)

    # Arithmetic operators (out of place) -------------------------------------------
    def __neg__(self) -> TensorList:
        return self.neg()

    def __add__(self, other: TensorList | Scalar) -> TensorList:
        return self.add(other)

    def __sub__(self, other: TensorList | Scalar) -> TensorList:
        return self.sub(other)

    def __mul__(self, other: TensorList | Scalar) -> TensorList:
        return self.mul(other)

    __rmul__ = __mul__

    def __truediv__(self, other: TensorList | Scalar) -> TensorList:
        return self.div(other)


def _dense_values(tensor: Tensor) -> Tensor:
    return tensor.coalesce().values() if tensor.is_sparse else tensor


def _per_tensor(arg: object, index: int) -> object:
    """The argument that the index-th tensor sees in the for-loop path."""
    if isinstance(arg, TensorList):
        return arg.tensors[index]
    if isinstance(arg, (list, tuple)):
        return arg[index]
    return arg


def _foreach_arg(arg: object) -> object:
    if isinstance(arg, TensorList):
        return arg.tensors
    if isinstance(arg, tuple):
        return list(arg)
    return arg


def _make_method(name: str, in_place: bool):
    foreach_op = getattr(torch, f"_foreach_{name}")

    def method(self: TensorList, *args, **kwargs):
        if self.foreach:
            result = foreach_op(self.tensors, *map(_foreach_arg, args), **kwargs)
        else:
            result = [
                getattr(t, name)(*(_per_tensor(a, i) for a in args), **kwargs)
                for i, t in enumerate(self.tensors)
            ]
        return self if in_place else self.wrap(result)

    method.__name__ = name
    method.__doc__ = f"Tensor.{name} applied to every tensor (torch._foreach_{name})."
    return method


# Each name is both a torch.Tensor method and a torch._foreach_* op with the same signature.
_OPERATIONS = (
    "add", "sub", "mul", "div", "addcmul", "addcdiv", "lerp", "maximum", "clamp_min",
    "clamp_max", "sqrt", "abs", "neg", "sign", "exp", "pow",
)
for _name in _OPERATIONS:
    setattr(TensorList, _name, _make_method(_name, in_place=False))
    if _name != "maximum":  # written out above
        setattr(TensorList, f"{_name}_", _make_method(f"{_name}_", in_place=True))
setattr(TensorList, "copy_", _make_method("copy_", in_place=True))
del _name
