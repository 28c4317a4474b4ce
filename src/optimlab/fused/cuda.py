"""The fused path on NVIDIA GPUs: one CUDA kernel per chain, built at run time.

The loop body is the CPU kernel's (`codegen.assemble`), compiled by NVRTC, the runtime
compiler that torch's CUDA builds ship (through ``torch.cuda._utils``), with IEEE
division and square roots and no contraction into FMAs (``--fmad=false``): for the same
inputs a step gives the CPU kernel's bits, which the tests check.

* One launch steps a whole bucket, as torch's multi-tensor kernels do: the kernel reads a
  device table of the tensors' data pointers and places in the concatenated elements;
  block ``b`` takes chunks ``b, b + grid, ...`` of `CHUNK` elements and finds a chunk's
  first tensor by binary search; a thread takes 16 bytes of each tensor at a time (one
  vector load and store where the tensor is 16-byte aligned, as torch's allocator makes
  them).
* The table is uploaded only when a pointer changes (a pinned, non-blocking copy), so the
  steady state of a training loop is one launch and no transfer.
* Per-step scalars (learning rate, bias corrections, ...) are kernel arguments: a
  scheduler never recompiles.
* A global norm (gradient clipping) is torch's, computed on the device; the kernel reads
  it from device memory, so a step never waits for the GPU.
* Compiling takes ~0.1-0.5 s per chain and dtype; the code is cached on disk beside the
  CPU kernels, so a later process loads it in milliseconds.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import tempfile
import time
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import codegen
from .spec import Elementwise

#: Elements per chunk: a block's share of the work at a time (4 rounds of its threads).
CHUNK = 4096
THREADS = 256
#: No contraction into FMAs (each operation rounds as the CPU kernel's does); NVRTC's
#: division and square roots are IEEE by default.
_OPTIONS = ("--fmad=false",)
#: Device tables kept (per device, stream and set of pointers).
_TABLES_KEPT = 64

_SOURCE = """\
typedef {T} T;
typedef {T}{lanes} V;
{helpers}
/* The table: C columns of n data pointers (P, G, buffers), then per tensor its start and
   end in the concatenated index space (starts at multiples of {lanes}, so a thread's {lanes}
   elements never straddle two tensors) and whether its pointers are 16-byte aligned.
   Block b takes chunks b, b + gridDim.x, ... of {chunk} elements. */
static __device__ __forceinline__ int first_tensor(const long long *ends, int n, long long start) {{
    int t = 0, last = n - 1;  /* binary search: the first tensor that ends after start */
    while (t < last) {{
        const int mid = (t + last) / 2;
        if (ends[mid] > start) last = mid; else t = mid + 1;
    }}
    return t;
}}

/* The sum over the block's threads, added in a fixed order. */
static __device__ __forceinline__ double block_sum(double x) {{
    __shared__ double sums[{threads}];
    sums[threadIdx.x] = x;
    __syncthreads();
    for (int w = {threads} / 2; w > 0; w >>= 1) {{
        if (threadIdx.x < w) sums[threadIdx.x] += sums[threadIdx.x + w];
        __syncthreads();
    }}
    return sums[0];
}}
{squares}
extern "C" __global__ void __launch_bounds__({threads}, 4)
optimlab_step(const long long *__restrict__ table, int n{norm_param}{scalar_params}) {{
{scalar_loads}
{norm}
    const long long *starts = table + {columns} * (long long)n, *ends = starts + n, *aligned = ends + n;
    const long long total = ends[n - 1];
    for (long long c = blockIdx.x; c * {chunk} < total; c += gridDim.x) {{
        const long long start = c * {chunk}, stop = min(start + {chunk}, total);
        for (int t = first_tensor(ends, n, start); t < n && starts[t] < stop; t++) {{
            const long long at = starts[t], e = min(stop, ends[t]) - at;
            T *__restrict__ P = (T *)table[t];
            const T *__restrict__ G = (const T *)table[n + t];
{pointers}
            for (long long j = max(start - at, 0LL) + threadIdx.x * {lanes}; j < e; j += {threads} * {lanes}) {{
                T p_[{lanes}] = {{0}}, u_[{lanes}] = {{0}}{registers};
                const bool whole = aligned[t] && j + {lanes} <= e;
                if (whole) {{
{vector_loads}
                }} else {{
                    for (int l = 0; l < {lanes} && j + l < e; l++) {{ {scalar_loads_lane} }}
                }}
#pragma unroll
                for (int l = 0; l < {lanes}; l++) {{
                    T p = p_[l], u = u_[l], R0 = 0, R1 = 0; (void)R0; (void)R1;
{body}
                    p_[l] = p;
                }}
                if (whole) {{
{vector_stores}
                }} else {{
                    for (int l = 0; l < {lanes} && j + l < e; l++) {{ {scalar_stores_lane} }}
                }}
            }}
        }}
    }}
}}
"""

#: The global norm's first pass (launched just before the step): each block's sum of
#: the squares of its chunks of the gradients, in double.
_SQUARES = """
extern "C" __global__ void __launch_bounds__({threads})
optimlab_squares(const long long *__restrict__ table, int n, double *__restrict__ partials) {{
    const long long *starts = table + {columns} * (long long)n, *ends = starts + n;
    const long long total = ends[n - 1];
    double sum = 0;
    for (long long c = blockIdx.x; c * {chunk} < total; c += gridDim.x) {{
        const long long start = c * {chunk}, stop = min(start + {chunk}, total);
        for (int t = first_tensor(ends, n, start); t < n && starts[t] < stop; t++) {{
            const long long at = starts[t], e = min(stop, ends[t]) - at;
            const T *__restrict__ G = (const T *)table[n + t];
            for (long long j = max(start - at, 0LL) + threadIdx.x; j < e; j += {threads}) {{
                const double g = (double)G[j];
                sum += g * g;
            }}
        }}
    }}
    sum = block_sum(sum);
    if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}}
"""

#: The step's norm: every block adds the partial sums in the same order.
_NORM_FROM_PARTIALS = """\
    double squares = 0;
    for (int i = threadIdx.x; i < parts; i += {threads}) squares += partials[i];
    const T norm = (T)sqrt(block_sum(squares));
"""


def lanes(dtype: torch.dtype) -> int:
    """Elements a thread takes at once: 16 bytes (one vector load or store per tensor)."""
    return 16 // dtype.itemsize


def generate(specs: list[Elementwise], ctype: str, lanes: int,
             norm_in_kernel: bool = True) -> tuple[str, list[tuple[int, str]]]:
    """The CUDA source of the chain's kernel and its per-step scalars, as (part, name).

    A chain with a global norm measures it (``norm_in_kernel``: the kernel
    ``optimlab_squares`` runs first, ``optimlab_step`` adds its partial sums) or reads it
    from device memory (``norm_ptr``, a 0-d tensor of torch's)."""
    body = codegen.assemble(specs, inline_roots=True, buffer="b{}_[l]")
    norm = squares = norm_param = ""
    if body.norm is not None:
        if norm_in_kernel:
            norm = _NORM_FROM_PARTIALS.format(threads=THREADS)
            norm_param = ", const double *__restrict__ partials, int parts"
            squares = _SQUARES.format(threads=THREADS, chunk=CHUNK, columns=2 + body.buffer_count)
        else:
            norm = "    const T norm = *norm_ptr;\n"
            norm_param = ", const T *__restrict__ norm_ptr"
        norm += f"    k{body.norm.target} = {body.norm_expression(lambda slot: f'k{slot}')};"
    (statements,) = body.stages
    # (memory, registers) of every array the loop reads, and of those it writes
    buffers = [(f"B{i}", f"b{i}_") for i in range(body.buffer_count)]
    read = [("P", "p_"), ("G", "u_"), *buffers]
    written = [("P", "p_"), *buffers]
    fields = "xyzw"[:lanes]
    indent = " " * 20

    def vector_load(memory, register):
        return f"{indent}{{ const V v = *(const V *)({memory} + j); " + " ".join(
            f"{register}[{l}] = v.{f};" for l, f in enumerate(fields)) + " }"

    def vector_store(memory, register):
        return f"{indent}{{ V v; " + " ".join(f"v.{f} = {register}[{l}];" for l, f in enumerate(fields)) + \
            f" *(V *)({memory} + j) = v; }}"

    source = _SOURCE.format(
        T=ctype,
        lanes=lanes,
        helpers=codegen.helpers(ctype, "static __device__ __forceinline__"),
        threads=THREADS,
        chunk=CHUNK,
        columns=2 + body.buffer_count,
        norm_param=norm_param,
        squares=squares,
        scalar_params="".join(f", double a{i}" for i in range(len(body.scalars))),
        scalar_loads="\n".join(f"    T k{i} = (T)a{i};" for i in range(len(body.scalars))),
        norm=norm,
        pointers="\n".join(f"            T *__restrict__ {m} = (T *)table[{i + 2} * n + t];"
                            for i, (m, _) in enumerate(buffers)),
        registers="".join(f", {r}[{lanes}] = {{0}}" for _, r in buffers),
        vector_loads="\n".join(vector_load(m, r) for m, r in read),
        vector_stores="\n".join(vector_store(m, r) for m, r in written),
        scalar_loads_lane=" ".join(f"{r}[l] = {m}[j + l];" for m, r in read),
        scalar_stores_lane=" ".join(f"{m}[j + l] = {r}[l];" for m, r in written),
        body="\n".join(" " * 20 + statement for statement in statements),
    )
    return source, list(body.scalars)


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """Whether CUDA and torch's runtime compiler (NVRTC, through torch.cuda._utils) are there."""
    if not torch.cuda.is_available():
        return False
    from torch.cuda import _utils

    return hasattr(_utils, "_nvrtc_compile") and hasattr(_utils, "_cuda_load_module")


#: ``launches`` (step kernels launched: a test proves one per step and dtype by it),
#: ``compiles`` and ``disk_loads`` (kernels built by NVRTC, and loaded from the cache).
stats: Counter = Counter()
#: Seconds spent building or loading, per kernel (a hash of its source).
compile_seconds: dict[Any, float] = {}
_kernels: dict[tuple, Any] = {}
_tables: OrderedDict[tuple[int, int, bytes], torch.Tensor] = OrderedDict()
_partials: dict[tuple[int, int, int], torch.Tensor] = {}
_failed: dict[tuple, str] = {}


def kernel(specs: list[Elementwise], dtype: torch.dtype, ctype: str, device: torch.device, norm_in_kernel: bool,
           cache: Path):
    """((step, squares), scalar slots) for the chain in ``dtype`` on ``device``, built at
    most once: the CUfunction handles of ``optimlab_step`` and ``optimlab_squares`` (None
    unless the chain measures a norm itself). The compiled code is kept in ``cache``, so a
    later process loads it. Raises RuntimeError if it cannot be built."""
    key = (tuple((s.code, s.apply, s.buffers, s.norm, s.wraps) for s in specs), dtype, device.index, norm_in_kernel)

    def build():
        source, slots = generate(specs, ctype, lanes(dtype), norm_in_kernel)
        names = ["optimlab_step"] + (["optimlab_squares"] if "optimlab_squares" in source else [])
        with torch.cuda.device(device):
            try:
                functions = _load(source, names, device, cache)
            except Exception as error:  # NVRTC missing or refusing: the eager path runs
                raise RuntimeError(f"building a CUDA kernel failed: {error}\n{source}") from error
        squares = functions["optimlab_squares"].func if len(names) > 1 else None
        return (functions["optimlab_step"].func, squares), slots

    return codegen.cached(_kernels, _failed, key, build)


def _load(source: str, names: list[str], device: torch.device, cache: Path):
    """The kernels ``names`` of ``source``: compiled for the device's architecture, or
    loaded from the cache (keyed by source, architecture and CUDA version)."""
    from torch.cuda import _utils

    started = time.perf_counter()
    capability = "".join(map(str, torch.cuda.get_device_capability(device)))
    digest = hashlib.sha256(f"{source}{capability}{torch.version.cuda}{_OPTIONS}".encode()).hexdigest()[:24]
    path = cache / f"optimlab_cuda_{digest}.cubin"
    if path.exists():
        binary = path.read_bytes()
        stats["disk_loads"] += 1
    else:
        binary, _ = _utils._nvrtc_compile(source, "optimlab_step", capability, nvcc_options=list(_OPTIONS))
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as file:
            file.write(binary)
        os.replace(file.name, path)  # atomic: concurrent processes never see half a file
        stats["compiles"] += 1
    functions = _utils._cuda_load_module(binary, names)
    compile_seconds[digest] = time.perf_counter() - started
    return functions


def _table(device: torch.device, stream: int, pointers: bytes) -> torch.Tensor:
    """The pointers and places on the device, uploaded once per distinct set (and
    stream: the upload is ordered before the launches of its stream only)."""
    key = (device.index, stream, pointers)
    table = _tables.get(key)
    if table is None:
        host = torch.frombuffer(bytearray(pointers), dtype=torch.int64).pin_memory()
        table = host.to(device, non_blocking=True)  # torch keeps ``host`` until the copy ran
        _tables[key] = table
        if len(_tables) > _TABLES_KEPT:
            _tables.popitem(last=False)
    else:
        _tables.move_to_end(key)
    return table


def run(functions, rows: list[list[torch.Tensor]], sizes: list[int], scalars: list[float],
        norm: torch.Tensor | None, lanes: int) -> None:
    """Launch the kernel(s) over ``rows`` (params, grads, buffers...) of one device:
    ``functions`` as `kernel` gives them; ``norm``: torch's, where the chain reads it."""
    step_function, squares_function = functions
    sizes = np.array(sizes, dtype=np.int64)
    padded = -(-sizes // lanes) * lanes
    starts = np.cumsum(padded) - padded
    total = int(starts[-1] + sizes[-1])
    if total == 0:
        return
    pointers = np.array([list(map(torch.Tensor.data_ptr, row)) for row in rows], dtype=np.int64)
    aligned = (np.bitwise_or.reduce(pointers, axis=0) & 15) == 0
    device = rows[0][0].device
    stream = torch.cuda.current_stream(device).cuda_stream
    table = _table(device, stream, np.concatenate([pointers.ravel(), starts, starts + sizes, aligned]).tobytes())
    blocks = min(-(-total // CHUNK), _blocks_per_wave(device))
    head = [ctypes.c_void_p(table.data_ptr()), ctypes.c_int(len(sizes))]
    launches = []
    if squares_function is not None:
        partials = _partials.get((device.index, stream, blocks))
        if partials is None:  # reused step after step: the stream orders its uses
            partials = _partials[(device.index, stream, blocks)] = torch.empty(blocks, dtype=torch.float64, device=device)
        launches.append((squares_function, [*head, ctypes.c_void_p(partials.data_ptr())]))
        head += [ctypes.c_void_p(partials.data_ptr()), ctypes.c_int(blocks)]
    elif norm is not None:
        head.append(ctypes.c_void_p(norm.data_ptr()))
    launches.append((step_function, [*head, *map(ctypes.c_double, scalars)]))
    with contextlib.nullcontext() if torch.cuda.current_device() == device.index else torch.cuda.device(device):
        for function, args in launches:
            _launch(function, blocks, stream, args)
    stats["launches"] += 1


def _launch(function, blocks: int, stream: int, args: list) -> None:
    """cuLaunchKernel through a handle to the driver opened once (torch's launcher opens
    it at every call: ~0.1 ms)."""
    pointers = (ctypes.c_void_p * len(args))(*map(ctypes.addressof, args))
    error = _driver().cuLaunchKernel(function, blocks, 1, 1, THREADS, 1, 1, 0, stream, pointers, None)
    if error:
        raise RuntimeError(f"optimlab: launching a CUDA kernel failed (CUresult {error})")


@functools.lru_cache(maxsize=1)
def _driver() -> ctypes.CDLL:
    driver = ctypes.CDLL("libcuda.so.1")
    driver.cuLaunchKernel.argtypes = [ctypes.c_void_p, *[ctypes.c_uint] * 6, ctypes.c_uint, ctypes.c_void_p,
                                      ctypes.c_void_p, ctypes.c_void_p]
    driver.cuLaunchKernel.restype = ctypes.c_int
    return driver


@functools.lru_cache(maxsize=None)
def _blocks_per_wave(device: torch.device) -> int:
    """Enough blocks to fill every SM (2,048 threads each) once."""
    return torch.cuda.get_device_properties(device).multi_processor_count * (2048 // THREADS)
