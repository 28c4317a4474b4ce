"""The elementwise description a transform may give of itself, for the fused path.

A transform whose update is elementwise (given a few per-step numbers) can describe
that update as a short C snippet, next to its `TensorList` math. The fused path
(`optimlab.fused.engine`) concatenates the snippets of a chain into one loop body and
compiles it once per (chain structure, dtypes), so a whole param group is stepped by
one kernel call that reads and writes each state element once.

Inside a snippet:

* ``u`` is the running update of one element (read and assign it), ``p`` the
  parameter's value before the step (read it; only an ``apply`` snippet assigns it);
* ``$name`` is a state buffer of the transform (one of ``buffers``, an lvalue) or a
  per-step scalar (a key of the dict that the transform's `~optimlab.Transform.coefficients`
  returns: the numbers its eager `update` reads too, computed once per step);
* the type of all of them is ``T`` (``double`` for float64 tensors, ``float`` for
  float32, float16 and bfloat16 ones: 16-bit values are loaded into float registers and
  rounded once when stored), and
  the helpers ``ABS``, ``FMA(a, b, c)`` (``a*b + c``, rounded once), ``lerp(a, b, w)``
  and ``maximum(a, b)`` (NaN-propagating) are defined;
* square roots: assign the radicands to the registers ``R0`` and ``R1``, write
  ``SQRTS;``, and from there on ``R0``/``R1`` hold their square roots. Locals declared
  before ``SQRTS;`` are gone after it (``u``, ``p``, the registers and the buffers
  remain). By default the kernel takes them inline, IEEE-exact and vectorized, as
  torch's fused kernels do; with ``OPTIMLAB_BIT_EXACT=1`` it takes the roots of a block
  of elements at once with torch.sqrt's own routine (MKL's in torch's x86 builds, which
  is not IEEE-exact), and then the fused path gives the eager path's bits exactly;
* per-tensor scalars (norms, dot products, counts) are declared in ``per_tensor``
  (`PerTensor`): sums over each tensor of expressions of the element's ``u`` and ``p``,
  and scalars computed from those sums, read as ``$name`` in the snippet;
* bucket scalars (`BucketSums`: Prodigy's and D-Adaptation's distance estimates) are
  computed once per call from sums over all the bucket's elements, read as ``$name`` in
  the snippet and handed back to the transform after the step (`~optimlab.Transform.absorb`);
* a part that wraps the parts just before it (``wraps``, `cautious`'s mask) reads the
  updates as those parts received them as ``$input``;
* per-tensor coefficients (``tensor_coefficients``: Muon's scale by a matrix's shape) are
  numbers the transform's `~optimlab.Transform.tensor_coefficients` gives for each tensor,
  read as ``$name``.

Rounding: the kernel is compiled without floating-point contraction, so each ``*``,
``/``, ``+`` rounds as the torch op it mirrors; torch's CPU kernels compute
``x.add(y, alpha=a)``, ``lerp`` and ``x.addcmul(y, z, value=v)`` with a fused
multiply-add, so snippets write those as ``FMA``: ``FMA(a, y, x)`` and
``FMA(v * y, z, x)`` (found by probing torch 2.13's CPU kernels; tests/
test_fast_path.py checks the fused path bit for bit against the eager one, with torch's
square roots). Written so, a snippet gives the same bits as its `TensorList` math but for
the square roots, so the fused and eager paths differ only where torch's own fused and
foreach kernels differ.

Per-step scalars are passed at every call, so changing a hyperparameter (a learning
rate schedule, new betas) never recompiles; only hyperparameters that change the
structure of the math (``amsgrad``, ``nesterov``, ``maximize``, and ``momentum``,
``weight_decay`` or ``lr_decay`` being 0, where the eager path skips the operation too)
select another snippet, and so another kernel, compiled once and cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


class PerTensor(NamedTuple):
    """Scalars with one value per tensor, from sums over the tensor's elements (LAMB's and
    LARS's trust ratios: the norms of a tensor and of its update).

    ``sums``: ``(name, expression)`` pairs: a C expression of one element of the updates
    this part receives (``u``), of the parameter (``p``), of the part's buffers and
    ``$coefficients``, summed in double over each tensor. ``scalars``: ``(name,
    expression)`` pairs: a C expression (in double) of the sums (``$name``) and the
    ``$coefficients``, computed per tensor; ``$name`` in the part's ``code`` is its value
    for the element's tensor.
    """

    sums: tuple[tuple[str, str], ...]
    scalars: tuple[tuple[str, str], ...]


class BucketSums(NamedTuple):
    """Scalars of the whole bucket, from sums over all its elements (Prodigy's and
    D-Adaptation's estimates of the distance to the solution).

    ``sums``: as `PerTensor`'s, summed in double over every element of the bucket, in a
    fixed order (the same bits for any number of threads). ``scalars``: ``(name,
    expression)`` pairs, in order: a C expression (in double) of the sums, the
    ``$coefficients`` and the scalars before it, computed once per kernel call; ``$name``
    in the part's ``code`` is its value. After the step the kernel hands every scalar back
    to the transform's `~optimlab.Transform.absorb` (the state it keeps outside the
    buffers: its new estimate), so no number crosses to Python in between.
    """

    sums: tuple[tuple[str, str], ...]
    scalars: tuple[tuple[str, str], ...]
    #: ``(name, condition)``: ``$name``, the one scalar the part's code reads, is true iff
    #: some element satisfies ``condition`` (a C expression as the sums'; D-Adaptation's
    #: "some s is not 0"). The kernel then looks for such an element first (the first one,
    #: as a rule) and takes the sums during the step: one pass, where it would measure
    #: the whole bucket and then step. The CPU kernel's, for a chain without a global norm.
    witness: tuple[str, str] | None = None


@dataclass(frozen=True)
class Elementwise:
    """One transform's update, as C statements over one element."""

    code: str
    buffers: tuple[str, ...] = ()
    #: statements that end a chain instead of ``code`` + ``p = p + u`` (e.g. ``p += -lr*u``).
    apply: str | None = None
    #: ``(name, expression)``: the per-step scalar ``$name`` is a C expression of
    #: ``norm``, the L2 norm of all the updates this part receives over the bucket (a
    #: global norm, computed by the kernel in a first pass over the gradients), and of
    #: ``$coefficients``. Allowed only where every earlier part `preserves_norm`.
    norm: tuple[str, str] | None = None
    #: ``u -> +-u``: the norm of the updates is unchanged.
    preserves_norm: bool = False
    #: The part's ``code`` runs after the previous part's ``apply`` moved ``p`` (and assigns
    #: ``p`` itself): a wrapper's own move of the parameters after its inner chain's step
    #: (Lookahead's pull of the slow weights). Allowed for the last part only.
    after_apply: bool = False
    #: Per-tensor scalars (`PerTensor`): the kernel runs the chain up to this part once
    #: without storing anything to measure the sums, then steps with the scalars (one
    #: more read of the tensors, no extra memory). One such part per chain; it runs on
    #: the CPU kernel, not the CUDA one.
    per_tensor: PerTensor | None = None
    #: Bucket scalars (`BucketSums`), measured as the per-tensor ones are (a first pass of
    #: the chain up to this part, storing nothing). One measuring part per chain, of
    #: either kind; the CPU kernel only, and one kernel call per bucket (a single dtype).
    bucket_sums: BucketSums | None = None
    #: How many parts just before this one it wraps (a wrapper's inner chain): its code and
    #: per-tensor sums read ``$input``, the updates as those parts received them (kept in a
    #: register; the kernel then takes its square roots inline).
    wraps: int = 0
    #: Names of numbers with one value per tensor that the transform gives
    #: (`~optimlab.Transform.tensor_coefficients`, read by its eager `update` too), not
    #: measured: ``$name`` in ``code`` is the element's tensor's. The CPU kernel only.
    tensor_coefficients: tuple[str, ...] = ()

    @property
    def measures(self) -> bool:
        """Whether the kernel measures sums for this part before the step."""
        return self.per_tensor is not None or self.bucket_sums is not None
