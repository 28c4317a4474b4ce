"""Scratch tensors a transform reuses from step to step.

On the CPU a fresh large tensor costs its first touch: each new page faults in, about
0.3 ms per MB on this project's 2-core machine, which is as much as the arithmetic of an
elementwise pass over it. A transform that needs the same scratch every step (Muon's
stacked matrices and the Newton-Schulz products) takes it from a `Workspace` instead.

A workspace is not state: nothing in it outlives a step's use, so a checkpoint, a copy or
a pickle of the transform leaves it out (an empty one comes back). Each thread has its
own tensors, so two threads stepping optimizers that share a transform do not share
scratch.

Kept scratch is memory held between steps, while the forward and backward passes run. A
workspace keeps at most `Workspace.limit` bytes (256 MiB by default); beyond it, a request
gets a fresh tensor, as if there were no workspace: for matrices that large the products
cost far more than the first touch of their memory.
"""

from __future__ import annotations

import threading

import torch


class Workspace:
    """Scratch tensors by (name, shape, dtype, device), made on first use and kept, up to
    ``limit`` bytes in all."""

    #: The bytes a workspace keeps at most.
    limit: int = 1 << 28

    def __init__(self) -> None:
        self._tensors: dict[tuple, torch.Tensor] = {}
        self._bytes = 0

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """The scratch tensor ``name`` of this shape, dtype and device (uninitialized the
        first time, then as its last use left it); a fresh one, not kept, once the kept
        ones would pass `limit`."""
        key = (threading.get_ident(), name, tuple(shape), dtype, device)
        tensor = self._tensors.get(key)
        if tensor is None:
            tensor = torch.empty(shape, dtype=dtype, device=device)
            size = tensor.numel() * tensor.element_size()
            if self._bytes + size <= self.limit:
                self._tensors[key] = tensor
                self._bytes += size
        return tensor

    def clear(self) -> None:
        """Free every scratch tensor."""
        self._tensors.clear()
        self._bytes = 0

    def __reduce__(self):
        return (Workspace, ())

    def __deepcopy__(self, memo) -> Workspace:
        return Workspace()
