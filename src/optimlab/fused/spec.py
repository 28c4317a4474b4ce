"""The elementwise description a transform may give of itself, for the fused path.

A transform whose update is elementwise (given a few per-step numbers) can describe
that update as a short C snippet, next to its `TensorList` math. The fused path
(`optimlab.fused.engine`) concatenates the snippets of a chain into one loop body and
compiles it once per (chain structure, dtype), so a whole param group is stepped by
one kernel call that reads and writes each state element once.

Inside a snippet:

* ``u`` is the running update of one element (read and assign it), ``p`` the
  parameter's value before the step (read it; only an ``apply`` snippet assigns it);
* ``$name`` is a state buffer of the transform (one of ``buffers``, an lvalue) or a
  per-step scalar (a key of the dict that ``scalars`` returns);
* the type of all of them is ``T`` (``float`` or ``double``, the tensors' dtype), and
  the helpers ``ABS``, ``FMA(a, b, c)`` (``a*b + c``, rounded once), ``lerp(a, b, w)``
  and ``maximum(a, b)`` (NaN-propagating) are defined;
* square roots: assign the radicands to the registers ``R0`` and ``R1``, write
  ``SQRTS;``, and from there on ``R0``/``R1`` hold their square roots. Locals declared
  before ``SQRTS;`` are gone after it (``u``, ``p``, the registers and the buffers
  remain): the kernel takes the roots of a block of elements at once, with the same
  routine as torch.sqrt (MKL's, in torch's x86 builds, which is not IEEE-exact, so
  a hand-written ``sqrt`` would differ from the eager path in the last bit).

Rounding: the kernel is compiled without floating-point contraction, so each ``*``,
``/``, ``+`` rounds as the torch op it mirrors; torch's CPU kernels compute
``x.add(y, alpha=a)``, ``lerp`` and ``x.addcmul(y, z, value=v)`` with a fused
multiply-add, so snippets write those as ``FMA``: ``FMA(a, y, x)`` and
``FMA(v * y, z, x)`` (found by probing torch 2.13's CPU kernels; tests/
test_fast_path.py checks the fused path bit for bit against the eager one). Written so, a snippet
gives the same bits as its `TensorList` math, and the fused path equals the eager one
exactly, which matters: over hundreds of steps some problems amplify a last-bit
difference a billion times.

Per-step scalars are passed at every call, so changing a hyperparameter (a learning
rate schedule, new betas) never recompiles; only hyperparameters that change the
structure of the math (``amsgrad``, ``nesterov``, ``momentum == 0``) select another
snippet, and so another kernel, compiled once and cached.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

#: scalars(hyperparams, step, state, grads) -> {name: value}. ``state`` is the
#: transform's own state (it may update non-elementwise state there, e.g. NAdam's
#: product of momenta; it is called exactly once per step); ``grads`` is the bucket's
#: gradient `TensorList`, given only to snippets with ``reads_updates``.
Scalars = Callable[[Mapping[str, Any], int, Mapping[str, Any], Any], Mapping[str, float]]


def _no_scalars(hyperparams, step, state, grads):
    return {}


@dataclass(frozen=True)
class Elementwise:
    """One transform's update, as C statements over one element."""

    code: str
    scalars: Scalars = _no_scalars
    buffers: tuple[str, ...] = ()
    #: statements that end a chain instead of ``code`` + ``p = p + u`` (e.g. ``p += -lr*u``).
    apply: str | None = None
    #: ``scalars`` needs the updates this transform receives as a whole (a global norm);
    #: allowed only where every earlier part `preserves_norm` (so they are +-grads).
    reads_updates: bool = False
    #: ``u -> +-u``: the norm of the updates is unchanged.
    preserves_norm: bool = False
