"""One compiled C kernel per chain: the fused execution path.

`step` runs a whole bucket (tensors of one param group with the same step count) with
one call of a kernel generated from the chain's `Elementwise` snippets:

* the loop body is the parts' snippets one after the other, so every state element is
  read and written once per step and nothing is materialized in between;
* one OpenMP parallel region covers *all* the tensors: the kernel gets arrays of data
  pointers and sizes, and each thread takes an equal, contiguous share of the
  concatenated elements, so 2,000 small tensors cost one call, not 2,000;
* per-step numbers (learning rate, bias corrections, ...) travel in a ``double``
  array at each call: a scheduler never triggers a compilation;
* the source is plain C (no torch headers; the kernel links the OpenMP runtime torch
  has already loaded), so gcc builds it in well under a second; the shared library is
  cached on disk under a hash of its source, compiler and CPU, so later processes load
  it in milliseconds.

Anything the kernel does not cover (a transform without a snippet, sparse or complex-
free odd dtypes, non-CPU tensors, non-contiguous tensors, a buffer a transform creates
lazily on its first step) makes `step` return False and the eager `TensorList` path,
the reference, runs instead.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
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
from string import Template
from typing import Any

import torch

from ..transform import Transform, chain
from .spec import Elementwise

#: Counters of the kernel cache: ``compiles`` (gcc runs), ``disk_loads`` (kernels
#: loaded from the on-disk cache), ``lookups`` (kernel look-ups at a step), ``calls``
#: (kernel calls). A test proves "no recompilation" by these.
stats: Counter = Counter()
#: Seconds spent compiling and loading, per kernel key (printed by the benchmark).
compile_seconds: dict[str, float] = {}

_DTYPES = {torch.float32: "float", torch.float64: "double"}
_FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-ffp-contract=off", "-fopenmp",
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
        if spec.reads_updates and not all(s.preserves_norm for s, _, _ in specs[:index]):
            return None
    return specs


# --- Code generation ----------------------------------------------------------------
_PRELUDE = """\
#include <stdint.h>
#include <math.h>
#include <omp.h>
typedef {T} T;
typedef void (*roots_fn)(int n, const T *a, T *r);
#define ABS(x) {fabs}(x)
#define FMA(a, b, c) {fma}(a, b, c)
#define SQRT(x) {sqrt}(x)
/* torch's lerp: both branches, then a select, so that the loop vectorizes */
static inline T lerp(T a, T b, T w) {{ T d = b - a, lo = FMA(w, d, a), hi = FMA(w - (T)1, d, b); return ABS(w) < (T)0.5 ? lo : hi; }}
static inline T maximum(T a, T b) {{ return (a > b || a != a) ? a : b; }}
#define BLOCK 4096
/* square roots of a block, in place: torch's routine if given, else IEEE sqrt */
static inline void roots(roots_fn f, int64_t m, T *x) {{
    if (f) {{ f((int)m, x, x); return; }}
    for (int64_t i = 0; i < m; i++) x[i] = {sqrt}(x[i]);
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

void optimlab_step(int64_t n, T **ptrs, const int64_t *sizes, const double *k, int threads, roots_fn f) {{
    int64_t total = 0;
    for (int64_t i = 0; i < n; i++) total += sizes[i];
    if (total < {parallel_min}) threads = 1;
    #pragma omp parallel num_threads(threads) if (threads > 1)
    {{
        int nt = omp_get_num_threads(), tid = omp_get_thread_num();
        /* an equal share of the concatenated elements, cut at 64-byte multiples */
        int64_t lo = (total * tid / nt) & ~(int64_t)15;
        int64_t hi = tid == nt - 1 ? total : ((total * (tid + 1) / nt) & ~(int64_t)15);
        int64_t base = 0;
        for (int64_t i = 0; i < n && base < hi; base += sizes[i], i++) {{
            int64_t s = lo > base ? lo - base : 0;
            int64_t e = hi - base < sizes[i] ? hi - base : sizes[i];
            if (s < e) span(ptrs[i], ptrs[n + i]{buffer_args}, s, e, k, f);
        }}
    }}
}}
"""

_STAGE = """\
        for (int64_t i = 0; i < m; i++) {{
            const int64_t j = b + i; (void)j;
            T p = {load_p}, u = {load_u}, R0 = {load_r0}, R1 = {load_r1};
{body}
            {store}
        }}
"""


def generate(specs: list[Elementwise], ctype: str, inline_roots: bool = False) -> tuple[str, list[tuple[int, str]]]:
    """The C source of the chain's kernel and its per-step scalars, as (part, name).

    The loop body is the parts' snippets in order, cut into stages at each ``SQRTS;``;
    a block of elements goes through one stage, then the square roots of the block's
    registers (torch's routine), then the next stage; all in cache, one read and one
    write of memory. With ``inline_roots`` (IEEE square roots suffice) there is one
    stage, and ``SQRTS;`` is the vectorized IEEE sqrt in place.
    """
    buffer_count = 0
    scalar_names: list[tuple[int, str]] = []
    stages: list[list[str]] = [[]]
    for index, spec in enumerate(specs):
        mapping = {}
        for name in spec.buffers:
            mapping[name] = f"B{buffer_count}[j]"
            buffer_count += 1
        code = spec.code
        if index == len(specs) - 1:
            code = spec.apply if spec.apply is not None else code + "\np = p + u;"
        for name in _template_names(code):
            if name not in mapping:
                mapping[name] = f"k{len(scalar_names)}"
                scalar_names.append((index, name))
        text = Template(code).substitute(mapping)
        if inline_roots:
            text = text.replace("SQRTS;", "R0 = SQRT(R0); R1 = SQRT(R1);")
        for number, piece in enumerate(text.split("SQRTS;")):
            if number:
                stages.append([])
            piece = " ".join(line.strip() for line in piece.strip().splitlines())
            if piece:
                stages[-1].append("            { " + piece + " }")
    blocks = []
    for number, body in enumerate(stages):
        first, last = number == 0, number == len(stages) - 1
        blocks.append(_STAGE.format(
            load_p="P[j]" if first else "pb[i]", load_u="G[j]" if first else "ub[i]",
            load_r0="0" if first else "r0b[i]", load_r1="0" if first else "r1b[i]",
            body="\n".join(body) or "            ;",
            store="P[j] = p;" if last else "pb[i] = p; ub[i] = u; r0b[i] = R0; r1b[i] = R1;",
        ))
        if not last:
            blocks.append("".join(f"        roots(f, m, r{r}b);\n" for r in (0, 1) if f"R{r}" in "".join(body)))
    suffix = "f" if ctype == "float" else ""
    source = _PRELUDE.format(T=ctype, sqrt="sqrt" + suffix, fabs="fabs" + suffix, fma="fma" + suffix)
    source += _KERNEL.format(
        buffer_params="".join(f", T *restrict B{i}" for i in range(buffer_count)),
        buffer_args="".join(f", ptrs[{i + 2} * n + i]" for i in range(buffer_count)),
        scalar_loads="\n".join(f"    const T k{i} = (T)k[{i}];" for i in range(len(scalar_names))),
        stages="".join(blocks),
        parallel_min=_PARALLEL_MIN,
    )
    return source, scalar_names


@functools.lru_cache(maxsize=None)
def torch_roots(dtype: torch.dtype) -> int | None:
    """The address of the square-root routine torch.sqrt uses on CPU for ``dtype``, if
    it is not IEEE sqrt: MKL's vdSqrt/vsSqrt in torch's x86 builds (checked on a probe,
    bit for bit). None where IEEE sqrt already gives torch's bits (or nothing matches),
    or where the environment sets ``OPTIMLAB_IEEE_SQRT=1``: faster (vectorized IEEE sqrt,
    torch's fused kernels' choice) but no longer bit-identical to the eager path, so a
    run's last bits then depend on when the fused path took over. Read once per dtype."""
    if os.environ.get("OPTIMLAB_IEEE_SQRT") == "1":
        return None
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


def _template_names(code: str) -> list[str]:
    names = []
    for match in Template.pattern.finditer(code):
        name = match.group("named") or match.group("braced")
        if name and name not in names:
            names.append(name)
    return names


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
    global _failed
    compiler, fingerprint = _toolchain()
    key = hashlib.sha256((fingerprint + source).encode()).hexdigest()[:24]
    path = cache_dir() / f"optimlab_{key}.so"  # the name `_built` looks for
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
    function.restype = None
    function.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                         ctypes.c_void_p]
    compile_seconds[key] = time.perf_counter() - started
    return function


def kernel(specs: list[Elementwise], dtype: torch.dtype):
    """(kernel function, scalar slots) for the chain in ``dtype``, compiled at most once."""
    global _failed
    key = (tuple((s.code, s.apply, s.buffers) for s in specs), dtype)
    stats["lookups"] += 1
    entry = _kernels.get(key)
    if entry is None:
        if _failed is not None:
            raise RuntimeError(_failed)
        with _lock:
            entry = _kernels.get(key)
            if entry is None:
                source, slots = generate(specs, _DTYPES[dtype], torch_roots(dtype) is None)
                try:
                    entry = (_library(source), slots)
                except (RuntimeError, OSError, subprocess.SubprocessError) as error:
                    _failed = str(error)
                    raise RuntimeError(_failed) from error
                _kernels[key] = entry
    return entry


_on_disk: dict[tuple, bool] = {}


def _built(specs, params) -> bool:
    """Whether the kernels for these parts and the params' dtypes are loaded or on disk."""
    specs = [s for s, _, _ in specs]
    for dtype in {p.dtype for p in params}:
        if dtype not in _DTYPES:
            return False
        key = (tuple((s.code, s.apply, s.buffers) for s in specs), dtype)
        if key in _kernels:
            continue
        if key not in _on_disk:
            try:
                _, fingerprint = _toolchain()
            except (RuntimeError, OSError, subprocess.SubprocessError):
                return False
            source, _ = generate(specs, _DTYPES[dtype], torch_roots(dtype) is None)
            name = hashlib.sha256((fingerprint + source).encode()).hexdigest()[:24]
            _on_disk[key] = (cache_dir() / f"optimlab_{name}.so").exists()
        if not _on_disk[key]:
            return False
    return True


def available() -> bool:
    """Whether a C compiler is there to build kernels."""
    try:
        _toolchain()
        return _failed is None
    except (RuntimeError, OSError, subprocess.SubprocessError):
        return False


# --- Running a step ------------------------------------------------------------------
#: By default a kernel that is not built yet (in memory or in the disk cache) is built
#: from the step where ``step * (elements + 4096 * tensors)`` reaches this: at once for
#: large models, after a few steps for medium ones, never in short runs of tiny ones
#: (tests), where compiling (~0.5 s, once per machine) would cost more than it saves.
#: A built kernel is used at once. Either way the results are the eager path's bits.
AUTO_WORK = 1 << 24
_PER_TENSOR = 4096


def _plain(tensor: torch.Tensor) -> bool:
    """A tensor whose data_ptr is its elements: not a wrapper subclass such as FSDP's
    DTensor (whose local shard the kernel cannot see: the eager path runs them)."""
    return type(tensor) in (torch.Tensor, torch.nn.Parameter)


def worthwhile(params, step: int) -> bool:
    n = len(params)
    if step * _PER_TENSOR * n >= AUTO_WORK:
        return True
    return step * (_PER_TENSOR * n + sum(p.numel() for p in params)) >= AUTO_WORK


def step(transform: Transform, params, grads, state, hyperparams, step: int, force: bool = True) -> bool:
    """Step one bucket with a fused kernel. False (and nothing changed) if it can't, or
    if ``force`` is False, the kernel is not built yet and building it does not pay yet
    (`worthwhile`). The kernel gives the eager path's bits, so when it takes over does
    not change the results."""
    specs = describe(transform, hyperparams)
    if specs is None:
        return False
    if not force and not worthwhile(params.tensors, step) and not _built(specs, params.tensors):
        return False
    params_t, grads_t = params.tensors, grads.tensors
    columns = []  # per buffer: its tensors
    for spec, _, prefix in specs:
        for name in spec.buffers:
            buffers = state.get(prefix + name)
            if buffers is None:
                return False
            columns.append(buffers.tensors)
    groups: dict[torch.dtype, list[int]] = {}
    for i, (p, g) in enumerate(zip(params_t, grads_t)):
        dtype = p.dtype
        if (dtype not in _DTYPES or g.dtype != dtype or p.device.type != "cpu" or g.layout != torch.strided
                or not p.is_contiguous() or not g.is_contiguous() or not _plain(p) or not _plain(g)):
            return False
        groups.setdefault(dtype, []).append(i)
    for column in columns:
        for p, b in zip(params_t, column):
            if b.dtype != p.dtype or not b.is_contiguous() or b.numel() != p.numel() or not _plain(b):
                return False
    try:
        kernels = {dtype: kernel([s for s, _, _ in specs], dtype) for dtype in groups}
    except RuntimeError as error:
        warnings.warn(f"optimlab: fused kernels unavailable, using the eager path ({error})", stacklevel=4)
        return False
    # Every check passed: from here on the step happens (scalars may update state).
    values = {}
    for index, (spec, leaf, prefix) in enumerate(specs):
        own = {k: state[prefix + k] for k in leaf.state_keys if prefix + k in state}
        for name, value in spec.scalars(hyperparams, step, own, grads if spec.reads_updates else None).items():
            values[(index, name)] = float(value)
    threads = torch.get_num_threads()
    for dtype, indices in groups.items():
        function, slots = kernels[dtype]
        scalars = array("d", [values[slot] for slot in slots])
        if len(indices) == len(params_t):
            rows = [params_t, grads_t, *columns]
        else:
            rows = [[row[i] for i in indices] for row in (params_t, grads_t, *columns)]
        pointers = array("q", [t.data_ptr() for row in rows for t in row])
        sizes = array("q", [t.numel() for t in rows[0]])
        function(len(rows[0]), pointers.buffer_info()[0], sizes.buffer_info()[0],
                 scalars.buffer_info()[0] if len(scalars) else None, threads, torch_roots(dtype))
        stats["calls"] += 1
    return True
