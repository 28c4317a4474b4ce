"""The fused execution path: which buckets a kernel steps, and with which numbers.

`step` runs a whole bucket (tensors of one param group with the same step count) with
one call of a kernel generated from the chain's `Elementwise` snippets, per signature
(the dtypes of a parameter and of its buffers):

* the loop body is the parts' snippets one after the other (`codegen.assemble`), so
  every state element is read and written once per step and nothing is materialized in
  between;
* per-step numbers (learning rate, bias corrections, ...) are each part's
  `~optimlab.Transform.coefficients`, the ones its eager `update` reads, passed at each
  call: a scheduler never triggers a compilation;
* the kernel is the CPU backend's (`optimlab.fused.cpu`, C with OpenMP) or the GPU's
  (`optimlab.fused.cuda`, NVRTC), by the tensors' device.

float16 and bfloat16 parameters are stepped by the CPU kernel with the arithmetic in
float32 registers, rounded to their dtype once at the store, as torch's fused kernels do
(state in the parameter's dtype, or in float32 where the param group sets
``state_dtype=torch.float32``).

A part may measure sums before the step (per tensor: LAMB's trust ratio; over the
bucket: Prodigy's distance estimate), in the same kernel call; the bucket scalars it
computes come back to its transform's `~optimlab.Transform.absorb` after the call.

A chain whose parts are not all elementwise (Muon's orthogonalization, SOAP's rotations)
does not fuse whole: ``fused=True`` raises (`check`), and by default its runs of
elementwise parts fuse, one kernel call each, around the other parts, which run eagerly
(`step_in_segments`). Tensors the kernels do not take (sparse,
non-contiguous tensors, tensor subclasses, a bucket spread over devices, 16-bit floats
on a GPU, a buffer a transform creates lazily on its first step) and a kernel that fails
to build make `step` return False and the eager `TensorList` path, the reference, runs
instead.
"""

from __future__ import annotations

import functools
import math
import operator
import os
import warnings
import weakref
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from ..transform import Part, Transform, chain
from ..transforms.partition import partition
from ..workspace import Workspace
from . import cpu, cuda
from .spec import Elementwise

#: ``calls``: kernel calls (a test proves the fused path ran by it).
stats: Counter = Counter()

_DTYPES = cpu.DTYPES
#: 16-bit floats: stepped by the CPU kernel in float32 registers, their state in their
#: own dtype or in float32.
_HALF = (torch.float16, torch.bfloat16)
_STRIDED = torch.strided

#: The fused path's bits equal the eager path's: square roots by torch.sqrt's own routine
#: and the global norm by torch, instead of inline IEEE roots and a norm in the kernel.
#: About 1.5-2x slower where torch.sqrt is MKL's (x86 builds). ``OPTIMLAB_BIT_EXACT=1``
#: sets it at import; tests set the attribute.
bit_exact = os.environ.get("OPTIMLAB_BIT_EXACT") == "1"


def cache_dir() -> Path:
    """Where compiled kernels are kept: $OPTIMLAB_CACHE_DIR, else ~/.cache/optimlab/kernels."""
    environ = os.environ
    return _cache_dir(environ.get("OPTIMLAB_CACHE_DIR"), environ.get("XDG_CACHE_HOME"), environ.get("HOME"))


@functools.lru_cache(maxsize=16)
def _cache_dir(root: str | None, cache_home: str | None, home: str | None) -> Path:
    # (by the variables it reads: a path is ~10 us to build, at every kernel call)
    if root:
        return Path(root)
    return Path(cache_home or Path.home() / ".cache") / "optimlab" / "kernels"


def available() -> bool:
    """Whether the CPU kernels can be built (a C compiler is there)."""
    return cpu.available()


# --- The chain as a list of snippets ---------------------------------------------------
Description = list[tuple[Elementwise, Part]]


def _describe(parts: tuple[Part, ...], hyperparams) -> tuple[Description | None, str]:
    """(each part's `Elementwise` with the part, ""), or (None, why the parts cannot fuse)."""
    specs = []
    for part in parts:
        spec = part.transform.elementwise(hyperparams)
        if spec is None:
            return None, f"{part.transform!r} is not elementwise (it has no fused form)"
        specs.append((spec, part))
    reason = _unfusable(specs)
    return (None, reason) if reason else (specs, "")


def _unfusable(specs: Description) -> str:
    """Why these snippets cannot make one kernel ("" if they can)."""
    if not specs:
        return "the chain is empty"
    misplaced = [p.transform for s, p in specs[:-1] if s.after_apply]
    if misplaced or (len(specs) == 1 and specs[0][0].after_apply):
        return f"{(misplaced or [specs[0][1].transform])[0]!r} moves the parameters after a step: it must end the chain"
    measuring = [part.transform for spec, part in specs if spec.measures]
    if len(measuring) > 1:
        return f"{measuring[0]!r} and {measuring[1]!r} both measure sums (the kernel takes one part's)"
    for index, (spec, part) in enumerate(specs):
        changed = [p.transform for s, p in specs[:index] if not s.preserves_norm]
        if spec.norm is not None and changed:
            return (f"{part.transform!r} measures the norm of the updates after {changed[-1]!r} "
                    "changed them (the kernel measures it before the first part)")
    return ""


def describe(transform: Transform, hyperparams) -> Description | None:
    """Each part's `Elementwise` with the part; None if the chain cannot fuse."""
    return _describe(transform.leaves(), hyperparams)[0]


def check(transform: Transform, hyperparams) -> None:
    """Raise ValueError if ``fused=True`` asks for a chain that cannot fuse."""
    specs, reason = _describe(transform.leaves(), hyperparams)
    if specs is None:
        raise ValueError(f"fused=True is not supported for this optimizer: {reason}; "
                         "use fused=None (the fused path where it can run) or fused=False")


# --- Running a step ------------------------------------------------------------------
#: By default a bucket takes the fused path from the step where
#: ``step * (elements + 4096 * tensors)`` reaches this: at once for large models, after a
#: few steps for medium ones, never in short runs of tiny ones (tests), where building a
#: kernel (~0.5 s, once per machine) would cost more than it saves. The rule depends on
#: nothing else (not on what the kernel cache holds), so a seed gives the same numbers
#: on every run, resumed from a checkpoint or not.
AUTO_WORK = 1 << 24
_PER_TENSOR = 4096


#: Tensors whose data_ptr is their elements: not a wrapper subclass such as FSDP's
#: DTensor (whose local shard the kernel cannot see: the eager path runs them).
_PLAIN = frozenset((torch.Tensor, torch.nn.Parameter))
_numel, _contiguous = torch.Tensor.numel, torch.Tensor.is_contiguous
_device_index = torch.Tensor.get_device
_dtype, _is_cpu, _layout = operator.attrgetter("dtype"), operator.attrgetter("is_cpu"), operator.attrgetter("layout")


def worthwhile(params, step: int) -> bool:
    n = len(params)
    if step * _PER_TENSOR * n >= AUTO_WORK:
        return True
    return step * (_PER_TENSOR * n + sum(p.numel() for p in params)) >= AUTO_WORK


def step(transform: Transform, params, grads, state, hyperparams, step: int, force: bool = True) -> bool:
    """Step one bucket with a fused kernel. False (and nothing changed) if it can't, or
    if ``force`` is False and the kernel does not pay yet (`worthwhile`)."""
    transform, hyperparams = _routed(transform, params.tensors, hyperparams)
    specs = describe(transform, hyperparams)
    if specs is None:
        if force:
            check(transform, hyperparams)  # the hyperparameters changed since the group was checked
        return False
    if not force and not worthwhile(params.tensors, step):
        return False
    return _run(specs, params, grads, state, hyperparams, step)


def _routed(transform: Transform, params, hyperparams) -> tuple[Transform, Any]:
    """The transform that steps the bucket, and the hyperparameters it reads: a
    `partition`'s for the label of all its parameters (the optimizer steps each label's
    apart, their states differing), else ``transform`` itself."""
    while isinstance(transform, partition):
        labels = set(map(transform.label, params))
        name = labels.pop() if len(labels) == 1 else None
        if name not in transform.transforms:  # (the eager path says why)
            break
        transform, hyperparams = transform.transforms[name], transform.view(hyperparams, name)
    return transform, hyperparams


# --- A chain with parts that are not elementwise -------------------------------------
Segment = tuple[tuple[Part, ...], "Description | None"]


def _units(transform: Transform, prefix: str = "") -> list[Part]:
    """The transforms a chain runs one after the other, nested chains flattened (a
    wrapper, `partition`, ... is one unit), with their state prefixes."""
    if isinstance(transform, chain):
        return [unit for part in transform.parts for unit in _units(part.transform, prefix + part.prefix)]
    return [Part(transform, prefix)]


def segments(transform: Transform, hyperparams, params=None) -> list[Segment] | None:
    """The chain cut into runs: ``(units, their Elementwise description)`` for each longest
    run of units that fuse together, ``(units, None)`` for the others (in order); None if
    no run fuses (or the transform is not a chain). With ``params`` (a bucket's tensors), the
    chain that steps them (`_routed`: a partition's for their label)."""
    if params is not None:
        transform, hyperparams = _routed(transform, params, hyperparams)
    cut: list[Segment] = []
    for unit in _units(transform):
        own = _describe(unit.leaves(), hyperparams)[0]
        if own is not None and cut and cut[-1][1] is not None and not _unfusable(cut[-1][1] + own):
            cut[-1] = (cut[-1][0] + (unit,), cut[-1][1] + own)
        else:
            cut.append(((unit,), own))
    # A run before the last stores its updates: not one that would only copy them (no
    # code: maximize=False), nor one that moves the parameters after its step (Lookahead's pull).
    cut[:-1] = [(units, None if specs is None or specs[-1][0].after_apply
                 or not any(spec.code.strip() or spec.buffers for spec, _ in specs) else specs)
                for units, specs in cut[:-1]]
    if len(cut) < 2 or all(specs is None for _, specs in cut):
        return None
    return cut


#: A bucket of fewer elements steps a chain that does not fuse whole eagerly: its data in
#: cache, the eager parts are as fast as the kernels, whose calls (one per run, each ~50 us
#: of Python) then cost more than they save (Muon's step: even at ~350K elements, on this
#: project's 2-core machine).
SEGMENTS_MIN = 1 << 18


def step_in_segments(transform: Transform, params, grads, state, hyperparams, step: int) -> bool:
    """Step one bucket of a chain whose parts are not all elementwise (Muon's
    orthogonalization, SOAP's rotations): each run of elementwise parts by one kernel call
    (the runs before the last store their updates in scratch, `_scratch_like`), the other parts
    eagerly, in order. A run whose kernel cannot take the tensors it is given runs eagerly.
    False (and nothing changed) where no run fuses, on a GPU, for 16-bit floats or tensor
    subclasses (FSDP's DTensor), or while the kernels do not pay (`worthwhile`, `SEGMENTS_MIN`)."""
    if (not worthwhile(params.tensors, step) or sum(map(_numel, params.tensors)) < SEGMENTS_MIN
            or not params.tensors[0].is_cpu
            or not set(map(type, params.tensors)) <= _PLAIN or set(map(_dtype, params.tensors)) & set(_HALF)):
        return False
    transform, hyperparams = _routed(transform, params.tensors, hyperparams)
    cut = segments(transform, hyperparams)
    if cut is None:
        return False
    updates = grads
    for index, (units, specs) in enumerate(cut):
        last = index == len(cut) - 1
        out = None if last or specs is None else updates.wrap(_scratch_like(transform, f"run {index}", params.tensors))
        if specs is not None and _run(specs, params, updates, state, hyperparams, step, out):
            updates = out
            continue
        for number, unit in enumerate(units):
            method = "apply" if last and number == len(units) - 1 else "update"
            updates = unit.run(method, updates, state, params, hyperparams, step)
    return True


#: The scratch of each chain's runs (`step_in_segments`), while the chain lives.
_workspaces: weakref.WeakKeyDictionary[Transform, Workspace] = weakref.WeakKeyDictionary()


def _scratch_like(transform: Transform, name: str, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Tensors like ``tensors``, views of one scratch slab that the chain's later steps
    reuse (updates live for a step: `optimlab.transform`), so their pages fault in once."""
    first = tensors[0]
    if any(t.dtype != first.dtype or t.device != first.device for t in tensors):
        return list(map(torch.empty_like, tensors))
    sizes = list(map(_numel, tensors))
    workspace = _workspaces.setdefault(transform, Workspace())
    slab = workspace.get(name, (sum(sizes),), first.dtype, first.device)
    return [piece.view(t.shape) for piece, t in zip(slab.split(sizes), tensors)]


def _run(specs: Description, params, grads, state, hyperparams, step: int, out=None) -> bool:
    """Step the bucket with the kernel of ``specs`` from the updates ``grads``: the
    parameters moved, or with ``out`` (new tensors like them) the updates stored there
    and the parameters left. False (and nothing changed) if the kernel cannot take them."""
    params_t, grads_t = params.tensors, grads.tensors
    columns = []  # per buffer: its tensors
    for spec, part in specs:
        for name in spec.buffers:
            buffers = state.get(part.prefix + name)
            if buffers is None:
                return False
            columns.append(buffers.tensors)
    # The checks run at every step over every tensor, so each is one C-level pass over a
    # row (map of a tensor method): with 2,000 small tensors they are most of a step.
    rows = [params_t, grads_t, *columns, *([out.tensors] if out is not None else [])]
    on_cpu = params_t[0].is_cpu
    sizes = list(map(_numel, params_t))
    for row in rows:
        if (not set(map(type, row)) <= _PLAIN or not all(map(_contiguous, row))
                or list(map(_numel, row)) != sizes
                or set(map(_is_cpu, row)) != {on_cpu} or set(map(_layout, row)) != {_STRIDED}):
            return False
    coefficient_names = [(index, name) for index, (spec, _) in enumerate(specs) for name in spec.tensor_coefficients]
    if not on_cpu:  # one CUDA device
        device = params_t[0].device
        if (device.type != "cuda" or not cuda.available() or out is not None or coefficient_names
                or any(spec.measures for spec, _ in specs)
                or any(set(map(_device_index, row)) != {device.index} for row in rows)):
            return False
    # A kernel call per signature (the dtype of a parameter and of each of its buffers).
    dtypes = list(map(_dtype, params_t))
    if list(map(_dtype, grads_t)) != dtypes:
        return False
    column_dtypes = [list(map(_dtype, column)) for column in columns]
    groups: dict[tuple[torch.dtype, ...], list[int] | None]
    if len(set(dtypes)) == 1 and all(d == dtypes for d in column_dtypes):
        groups = {(dtypes[0],) * (1 + len(columns)): None}  # None: all the tensors
    else:
        groups = {}
        for i, signature in enumerate(zip(dtypes, *column_dtypes)):
            groups.setdefault(signature, []).append(i)
    bucket_part = next((index for index, (spec, _) in enumerate(specs) if spec.bucket_sums is not None), None)
    if bucket_part is not None and len(groups) > 1:  # its sums span the bucket: one kernel call
        return False
    supported = cpu.STORAGE if on_cpu else _DTYPES
    for dtype, *buffer_dtypes in groups:
        if dtype not in supported or any(b != dtype and not (b == torch.float32 and dtype in _HALF)
                                         for b in buffer_dtypes):
            return False
    # A global norm spans the whole bucket: the kernel measures it when one call covers
    # the bucket; else (several dtypes, or bit-exact) torch measures it once for all calls.
    norm_part = next((index for index, (spec, _) in enumerate(specs) if spec.norm is not None), None)
    norm_in_kernel = len(groups) == 1 and not bit_exact
    chain_specs = [s for s, _ in specs]
    try:
        if on_cpu:
            kernels = {signature: cpu.kernel(chain_specs, signature, norm_in_kernel, bit_exact, cache_dir(),
                                             emits=out is not None)
                       for signature in groups}
        else:
            kernels = {signature: cuda.kernel(chain_specs, signature[0], _DTYPES[signature[0]], device, norm_in_kernel,
                                              cache_dir())
                       for signature in groups}
    except RuntimeError as error:
        warnings.warn(f"optimlab: fused kernels unavailable, using the eager path ({error})", stacklevel=4)
        return False
    # Every check passed: from here on the step happens (scalars may update state).
    values = {}
    for index, (_, part) in enumerate(specs):
        for name, value in part.transform.coefficients(hyperparams, step, part.state(state)).items():
            values[(index, name)] = float(value)
    if bucket_part is not None:
        for name, _ in specs[bucket_part][0].bucket_sums.scalars:
            values[(bucket_part, name)] = math.nan  # set by the kernel
    per_tensor = {}
    for index in sorted({index for index, _ in coefficient_names}):
        part = specs[index][1]
        for name, numbers in part.transform.tensor_coefficients(hyperparams, params).items():
            per_tensor[(index, name)] = numbers
    norm = None
    if norm_part is not None:
        values[(norm_part, specs[norm_part][0].norm[0])] = math.nan  # set by the kernel
        if not norm_in_kernel:
            norm = grads.global_norm()  # a GPU's stays there: the kernel reads it
            if on_cpu:
                values[(norm_part, "norm")] = float(norm)
    threads = torch.get_num_threads()
    for signature, indices in groups.items():
        dtype = signature[0]
        function, slots = kernels[signature]
        if indices is None:
            dtype_rows, row_sizes = rows, sizes
        else:
            dtype_rows = [[row[i] for i in indices] for row in rows]
            row_sizes = [sizes[i] for i in indices]
        coefficients = [float(per_tensor[name][i]) for i in (indices if indices is not None else range(len(sizes)))
                        for name in coefficient_names]
        if not on_cpu:
            cuda.run(function, dtype_rows, row_sizes, [values[slot] for slot in slots],
                     None if norm is None else norm.to(dtype), cuda.lanes(dtype))
        else:
            computed = cpu.run(function, dtype_rows, row_sizes, [values[slot] for slot in slots], threads,
                               cpu.roots_routine(dtype, bit_exact), coefficients)
            if bucket_part is not None:
                spec, part = specs[bucket_part]
                part.transform.absorb({name: computed[slots.index((bucket_part, name))]
                                       for name, _ in spec.bucket_sums.scalars}, part.state(state), hyperparams, step)
        stats["calls"] += 1
    return True
