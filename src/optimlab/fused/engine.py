"""One compiled kernel per chain: the fused execution path.

`step` runs a whole bucket (tensors of one param group with the same step count) with
one call of a kernel generated from the chain's `Elementwise` snippets:

* the loop body is the parts' snippets one after the other, so every state element is
  read and written once per step and nothing is materialized in between;
* one OpenMP parallel region covers *all* the tensors: the kernel gets arrays of data
  pointers and sizes, and each thread takes an equal, contiguous share of the
  concatenated elements, so 2,000 small tensors cost one call, not 2,000;
* per-step numbers (learning rate, bias corrections, ...) travel in a ``double``
  array at each call: a scheduler never triggers a compilation;
* a global norm (gradient clipping) is a first pass over the gradients inside the same
  parallel region, summed in a fixed order (the same bits for any number of threads);
* square roots are IEEE and inline, as in torch's fused kernels (`bit_exact` takes
  torch.sqrt's own routine instead, for the eager path's bits);
* the source is plain C (no torch headers; the kernel links the OpenMP runtime torch
  has already loaded), so gcc builds it in well under a second; the shared library is
  cached on disk under a hash of its source, compiler and CPU, so later processes load
  it in milliseconds.

CUDA tensors take the same loop body as a CUDA kernel (`optimlab.fused.cuda`). Anything
the kernels do not cover (a transform without a snippet, sparse tensors, dtypes other
than float32/float64, non-contiguous tensors, a bucket spread over devices, a buffer a transform creates
lazily on its first step) makes `step` return False and the eager `TensorList` path,
the reference, runs instead.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import math
import operator
import os
import platform
import re
import shutil
import subprocess
import tempfile
import threading
import time
import warnings
from array import array
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from ..transform import Transform, chain
from . import codegen, cuda
from .spec import Elementwise

#: Counters of the kernel cache: ``compiles`` (gcc runs), ``disk_loads`` (kernels
#: loaded from the on-disk cache), ``lookups`` (kernel look-ups at a step), ``calls``
#: (kernel calls). A test proves "no recompilation" by these.
stats: Counter = Counter()
#: Seconds spent compiling and loading, per kernel key (printed by the benchmark).
compile_seconds: dict[str, float] = {}

_DTYPES = {torch.float32: "float", torch.float64: "double"}
_STRIDED = torch.strided
#: No flag changes a result: no contraction into FMAs (each op rounds as torch's does),
#: no reassociation; -fno-trapping-math (we never unmask FP exceptions) lets gcc turn a
#: branch on a per-step scalar into a vector select.
_FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off", "-fopenmp",
          "-shared", "-fPIC", "-std=gnu11"]
#: Below this many elements a kernel call runs on one thread (a parallel region costs
#: more than it saves).
_PARALLEL_MIN = 1 << 16

_kernels: dict[tuple, Any] = {}
_lock = threading.Lock()
_failed: str | None = None


# --- The chain as a flat list of parts -----------------------------------------------
@functools.lru_cache(maxsize=256)
def _parts(transform: Transform) -> tuple[tuple[Transform, str], ...]:
    """The leaves of a (nested) chain with the prefix of their state keys."""
    if isinstance(transform, chain):
        return tuple(
            (leaf, prefix + inner)
            for part, prefix in zip(transform.transforms, transform._prefixes)
            for leaf, inner in _parts(part)
        )
    return ((transform, ""),)


def describe(transform: Transform, hyperparams) -> list[tuple[Elementwise, Transform, str]] | None:
    """Each part's `Elementwise` with the part and its state prefix; None if one has none."""
    parts = _parts(transform)
    if not parts:
        return None
    specs = []
    for leaf, prefix in parts:
        method = getattr(leaf, "elementwise", None)
        spec = method(hyperparams) if method is not None else None
        if spec is None:
            return None
        specs.append((spec, leaf, prefix))
    for index, (spec, _, _) in enumerate(specs):
        if spec.norm is not None and not all(s.preserves_norm for s, _, _ in specs[:index]):
            return None
    return specs


# --- Code generation ----------------------------------------------------------------
_PRELUDE = """\
#include <stdint.h>
#include <stdlib.h>
#include <math.h>
#include <omp.h>
typedef {T} T;
typedef void (*roots_fn)(int n, const T *a, T *r);
{helpers}#define BLOCK 4096
/* square roots of a block, in place: torch's routine if given, else IEEE sqrt */
static inline void roots(roots_fn f, int64_t m, T *x) {{
    if (f) {{ f((int)m, x, x); return; }}
    for (int64_t i = 0; i < m; i++) x[i] = SQRT(x[i]);
}}
"""

_KERNEL = """
static void span(T *restrict P, const T *restrict G{buffer_params}, int64_t s, int64_t e, const double *k, roots_fn f) {{
{scalar_loads}
    T ub[BLOCK], pb[BLOCK], r0b[BLOCK], r1b[BLOCK];
    (void)ub; (void)pb; (void)r0b; (void)r1b; (void)f;
    for (int64_t b = s; b < e; b += BLOCK) {{
        int64_t m = e - b < BLOCK ? e - b : BLOCK;
{stages}
    }}
}}

/* Sum of squares into 16 lanes: a fixed order that still vectorizes. */
static inline void squares(const T *restrict x, int64_t m, double *restrict acc) {{
    int64_t i = 0;
    for (; i + 16 <= m; i += 16)
        for (int l = 0; l < 16; l++) acc[l] += (double)x[i + l] * (double)x[i + l];
    for (int l = 0; i + l < m; l++) acc[l] += (double)x[i + l] * (double)x[i + l];
}}

/* The sum of squares of chunk c of the concatenated gradients (elements [c * BLOCK,
   (c + 1) * BLOCK); `ends` are the tensors' cumulative sizes): the same bits whichever
   thread computes it. */
static double chunk_squares(int64_t n, T **ptrs, const int64_t *sizes, const int64_t *ends, int64_t total, int64_t c) {{
    int64_t start = c * BLOCK, stop = start + BLOCK < total ? start + BLOCK : total;
    int64_t first = 0, last = n - 1;  /* binary search: the first tensor that ends after start */
    while (first < last) {{
        int64_t mid = (first + last) / 2;
        if (ends[mid] > start) last = mid; else first = mid + 1;
    }}
    double acc[16] = {{0}}, sum = 0;
    for (int64_t i = first, at = ends[first] - sizes[first]; i < n && at < stop; at += sizes[i], i++) {{
        int64_t s = start > at ? start - at : 0, e = stop - at < sizes[i] ? stop - at : sizes[i];
        squares(ptrs[n + i] + s, e - s, acc);
    }}
    for (int l = 0; l < 16; l++) sum += acc[l];
    return sum;
}}

int optimlab_step(int64_t n, T **ptrs, const int64_t *sizes, const double *k, int threads, roots_fn f) {{
    int64_t total = 0;
    for (int64_t i = 0; i < n; i++) total += sizes[i];
    if (total < {parallel_min}) threads = 1;
    int64_t chunks = (total + BLOCK - 1) / BLOCK; (void)chunks;
    double *sums = NULL;
    int64_t *ends = NULL;
#if NORM_PASS
    sums = malloc((chunks + 1) * sizeof(double));
    ends = malloc(n * sizeof(int64_t));
    if (!sums || !ends) {{ free(sums); free(ends); return 1; }}
    for (int64_t i = 0; i < n; i++) ends[i] = (i ? ends[i - 1] : 0) + sizes[i];
#endif
    #pragma omp parallel num_threads(threads) if (threads > 1)
    {{
        int nt = omp_get_num_threads(), tid = omp_get_thread_num();
        /* an equal share of the concatenated elements, cut at multiples of BLOCK */
        int64_t lo = total * tid / nt / BLOCK * BLOCK;
        int64_t hi = tid == nt - 1 ? total : total * (tid + 1) / nt / BLOCK * BLOCK;
        double kk[{slots} + 1];
        for (int i = 0; i < {slots}; i++) kk[i] = k[i];
{norm}
        int64_t base = 0;
        for (int64_t i = 0; i < n && base < hi; base += sizes[i], i++) {{
            int64_t s = lo > base ? lo - base : 0;
            int64_t e = hi - base < sizes[i] ? hi - base : sizes[i];
            if (s < e) span(ptrs[i], ptrs[n + i]{buffer_args}, s, e, kk, f);
        }}
    }}
    free(sums);
    free(ends);
    return 0;
}}
"""

#: The global norm, computed in the kernel: a first pass over the gradients, chunk by
#: chunk, handed out dynamically (a thread slowed down by a neighbour on the machine
#: does not hold the other back), then every thread adds the chunks' sums in order.
_NORM_IN_KERNEL = """\
        #pragma omp for schedule(dynamic, 8)
        for (int64_t c = 0; c < chunks; c++) sums[c] = chunk_squares(n, ptrs, sizes, ends, total, c);
        double total_squares = 0;  /* (after the loop's barrier) */
        for (int64_t c = 0; c < chunks; c++) total_squares += sums[c];
        const T norm = (T)sqrt(total_squares);
"""

_STAGE = """\
        for (int64_t i = 0; i < m; i++) {{
            const int64_t j = b + i; (void)j;
            T p = {load_p}, u = {load_u}, R0 = {load_r0}, R1 = {load_r1};
{body}
            {store}
        }}
"""


def generate(specs: list[Elementwise], ctype: str, inline_roots: bool = True,
             norm_in_kernel: bool = True) -> tuple[str, list[tuple[int, str]]]:
    """The C source of the chain's kernel and its per-step scalars, as (part, name).

    The loop body is `codegen.assemble`'s. With ``inline_roots`` (IEEE square roots) it
    is one stage; else a block of elements goes through one stage, then the square roots
    of the block's registers (torch's routine, the kernel's ``f``), then the next stage;
    all in cache, one read and one write of memory.

    A part with a ``norm`` scalar gets it computed per step from the global norm of the
    gradients: measured by the kernel (``norm_in_kernel``) or given as the scalar
    ``(part, "norm")``.
    """
    body = codegen.assemble(specs, inline_roots, norm_as_scalar=not norm_in_kernel)
    norm_code = ""
    if body.norm is not None:
        if norm_in_kernel:
            norm_code = _NORM_IN_KERNEL
        else:
            norm_code = f"        const T norm = (T)k[{body.scalars.index((body.norm.part, 'norm'))}];\n"
        expression = body.norm_expression(lambda slot: f"((T)k[{slot}])")
        norm_code += f"        kk[{body.norm.target}] = (double)({expression});\n"
    blocks = []
    for number, statements in enumerate(body.stages):
        first, last = number == 0, number == len(body.stages) - 1
        text = "\n".join(" " * 12 + statement for statement in statements)
        blocks.append(_STAGE.format(
            load_p="P[j]" if first else "pb[i]", load_u="G[j]" if first else "ub[i]",
            load_r0="0" if first else "r0b[i]", load_r1="0" if first else "r1b[i]",
            body=text or "            ;",
            store="P[j] = p;" if last else "pb[i] = p; ub[i] = u; r0b[i] = R0; r1b[i] = R1;",
        ))
        if not last:
            blocks.append("".join(f"        roots(f, m, r{r}b);\n" for r in (0, 1) if f"R{r}" in text))
    source = f"#define NORM_PASS {int(bool(norm_code) and norm_in_kernel)}\n"
    source += _PRELUDE.format(T=ctype, helpers=codegen.helpers(ctype, "static inline"))
    source += _KERNEL.format(
        buffer_params="".join(f", T *restrict B{i}" for i in range(body.buffer_count)),
        buffer_args="".join(f", ptrs[{i + 2} * n + i]" for i in range(body.buffer_count)),
        scalar_loads="\n".join(f"    const T k{i} = (T)k[{i}];" for i in range(len(body.scalars))),
        stages="".join(blocks),
        parallel_min=_PARALLEL_MIN,
        slots=len(body.scalars),
        norm=norm_code,
    )
    return source, list(body.scalars)


#: The fused path's bits equal the eager path's: square roots by torch.sqrt's own routine
#: and the global norm by torch, instead of inline IEEE roots and a norm in the kernel.
#: About 1.5-2x slower where torch.sqrt is MKL's (x86 builds). ``OPTIMLAB_BIT_EXACT=1``
#: sets it at import; tests set the attribute.
bit_exact = os.environ.get("OPTIMLAB_BIT_EXACT") == "1"


@functools.lru_cache(maxsize=None)
def _torch_sqrt_routine(dtype: torch.dtype) -> int | None:
    """The address of the square-root routine torch.sqrt uses on CPU for ``dtype`` if it
    is not IEEE sqrt: MKL's vdSqrt/vsSqrt in torch's x86 builds (checked on a probe, bit
    for bit). None where IEEE sqrt already gives torch's bits, or nothing matches."""
    probe = torch.rand(4099, dtype=dtype, generator=torch.Generator().manual_seed(0)) * 1e-6
    expected = probe.sqrt()
    import numpy as np

    if np.array_equal(np.sqrt(probe.numpy()), expected.numpy()):
        return None
    try:
        library = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
        function = getattr(library, "vdSqrt" if dtype == torch.float64 else "vsSqrt")
    except (OSError, AttributeError):
        return None
    out = torch.empty_like(probe)
    function(ctypes.c_int(probe.numel()), ctypes.c_void_p(probe.data_ptr()), ctypes.c_void_p(out.data_ptr()))
    if not torch.equal(out, expected):
        return None
    return ctypes.cast(function, ctypes.c_void_p).value


def roots_routine(dtype: torch.dtype) -> int | None:
    """The routine the kernel calls for square roots (None: inline IEEE sqrt)."""
    return _torch_sqrt_routine(dtype) if bit_exact else None


# --- Compilation and the cache --------------------------------------------------------
def cache_dir() -> Path:
    """Where compiled kernels are kept: $OPTIMLAB_CACHE_DIR, else ~/.cache/optimlab/kernels."""
    root = os.environ.get("OPTIMLAB_CACHE_DIR")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "optimlab" / "kernels"


@functools.lru_cache(maxsize=1)
def _toolchain() -> tuple[str, str]:
    """(compiler path, a fingerprint of compiler + CPU) or raise RuntimeError."""
    compiler = os.environ.get("OPTIMLAB_CC") or shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise RuntimeError("no C compiler (gcc) found")
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True).stdout
    cpu = platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text()
        cpu += "".join(re.findall(r"^(?:model name|flags)\s*:.*$", text, re.M)[:2])
    except OSError:
        pass
    return compiler, hashlib.sha256((version + cpu + " ".join(_FLAGS)).encode()).hexdigest()


def _library(source: str):
    """The loaded kernel library for ``source``: from memory, disk, or compiled now."""
    compiler, fingerprint = _toolchain()
    key = hashlib.sha256((fingerprint + source).encode()).hexdigest()[:24]
    path = cache_dir() / f"optimlab_{key}.so"
    started = time.perf_counter()
    if path.exists():
        stats["disk_loads"] += 1
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            c_file = Path(tmp) / "kernel.c"
            c_file.write_text(source)
            out = Path(tmp) / "kernel.so"
            result = subprocess.run(
                [compiler, *_FLAGS, str(c_file), "-o", str(out), "-lm"], capture_output=True, text=True
            )
            if result.returncode != 0:
                raise RuntimeError(f"compiling a fused kernel failed:\n{result.stderr}\n{source}")
            os.replace(out, path)  # atomic: concurrent processes never see half a file
        stats["compiles"] += 1
    library = ctypes.CDLL(str(path))
    function = library.optimlab_step
    function.restype = ctypes.c_int
    function.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                         ctypes.c_void_p]
    compile_seconds[key] = time.perf_counter() - started
    return function


def kernel(specs: list[Elementwise], dtype: torch.dtype, norm_in_kernel: bool):
    """(kernel function, scalar slots) for the chain in ``dtype``, compiled at most once."""
    global _failed
    inline_roots = roots_routine(dtype) is None
    key = (tuple((s.code, s.apply, s.buffers, s.norm) for s in specs), dtype, inline_roots, norm_in_kernel)
    stats["lookups"] += 1
    entry = _kernels.get(key)
    if entry is None:
        if _failed is not None:
            raise RuntimeError(_failed)
        with _lock:
            entry = _kernels.get(key)
            if entry is None:
                source, slots = generate(specs, _DTYPES[dtype], inline_roots, norm_in_kernel)
                try:
                    entry = (_library(source), slots)
                except (RuntimeError, OSError, subprocess.SubprocessError) as error:
                    _failed = str(error)
                    raise RuntimeError(_failed) from error
                _kernels[key] = entry
    return entry


def available() -> bool:
    """Whether a C compiler is there to build kernels."""
    try:
        _toolchain()
        return _failed is None
    except (RuntimeError, OSError, subprocess.SubprocessError):
        return False


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
_numel, _contiguous, _data_ptr = torch.Tensor.numel, torch.Tensor.is_contiguous, torch.Tensor.data_ptr
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
    specs = describe(transform, hyperparams)
    if specs is None:
        return False
    if not force and not worthwhile(params.tensors, step):
        return False
    params_t, grads_t = params.tensors, grads.tensors
    columns = []  # per buffer: its tensors
    for spec, _, prefix in specs:
        for name in spec.buffers:
            buffers = state.get(prefix + name)
            if buffers is None:
                return False
            columns.append(buffers.tensors)
    # The checks run at every step over every tensor, so each is one C-level pass over a
    # row (map of a tensor method): with 2,000 small tensors they are most of a step.
    rows = [params_t, grads_t, *columns]
    on_cpu = params_t[0].is_cpu
    sizes = list(map(_numel, params_t))
    dtypes = list(map(_dtype, params_t))
    for row in rows:
        if (not set(map(type, row)) <= _PLAIN or not all(map(_contiguous, row))
                or list(map(_numel, row)) != sizes or list(map(_dtype, row)) != dtypes
                or set(map(_is_cpu, row)) != {on_cpu} or set(map(_layout, row)) != {_STRIDED}):
            return False
    if not on_cpu:  # one CUDA device
        device = params_t[0].device
        if (device.type != "cuda" or not cuda.available()
                or any(set(map(_device_index, row)) != {device.index} for row in rows)):
            return False
    dtypes = set(dtypes)
    if not dtypes <= _DTYPES.keys():
        return False
    groups: dict[torch.dtype, list[int] | None]  # a kernel call per dtype, over these tensors
    if len(dtypes) == 1:
        groups = {dtypes.pop(): None}  # None: all of them
    else:
        groups = {dtype: [] for dtype in dtypes}
        for i, p in enumerate(params_t):
            groups[p.dtype].append(i)
    # A global norm spans the whole bucket: the kernel measures it when one call covers
    # the bucket; else (several dtypes, or bit-exact) torch measures it once for all calls.
    norm_part = next((index for index, (spec, _, _) in enumerate(specs) if spec.norm is not None), None)
    norm_in_kernel = len(groups) == 1 and not bit_exact
    chain_specs = [s for s, _, _ in specs]
    try:
        if on_cpu:
            kernels = {dtype: kernel(chain_specs, dtype, norm_in_kernel) for dtype in groups}
        else:
            kernels = {dtype: cuda.kernel(chain_specs, dtype, _DTYPES[dtype], device, norm_in_kernel, cache_dir())
                       for dtype in groups}
    except RuntimeError as error:
        warnings.warn(f"optimlab: fused kernels unavailable, using the eager path ({error})", stacklevel=4)
        return False
    # Every check passed: from here on the step happens (scalars may update state).
    values = {}
    for index, (spec, leaf, prefix) in enumerate(specs):
        own = {k: state[prefix + k] for k in leaf.state_keys if prefix + k in state}
        for name, value in spec.scalars(hyperparams, step, own).items():
            values[(index, name)] = float(value)
    norm = None
    if norm_part is not None:
        values[(norm_part, specs[norm_part][0].norm[0])] = math.nan  # set by the kernel
        if not norm_in_kernel:
            norm = grads.global_norm()  # a GPU's stays there: the kernel reads it
            if on_cpu:
                values[(norm_part, "norm")] = float(norm)
    threads = torch.get_num_threads()
    for dtype, indices in groups.items():
        function, slots = kernels[dtype]
        if indices is None:
            dtype_rows, row_sizes = rows, sizes
        else:
            dtype_rows = [[row[i] for i in indices] for row in rows]
            row_sizes = [sizes[i] for i in indices]
        if not on_cpu:
            cuda.run(function, dtype_rows, row_sizes, [values[slot] for slot in slots],
                     None if norm is None else norm.to(dtype), cuda.lanes(dtype))
        else:
            scalars = array("d", [values[slot] for slot in slots])
            pointers = array("q", [pointer for row in dtype_rows for pointer in map(_data_ptr, row)])
            counts = array("q", row_sizes)
            if function(len(row_sizes), pointers.buffer_info()[0], counts.buffer_info()[0],
                        scalars.buffer_info()[0] if len(scalars) else None, threads, roots_routine(dtype)):
                raise MemoryError("optimlab: the fused kernel could not allocate its global-norm buffer")
        stats["calls"] += 1
    return True
