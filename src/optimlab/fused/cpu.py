"""The fused path on the CPU: one generated C kernel per chain and dtype.

* One OpenMP parallel region covers *all* the tensors of a call: the kernel gets arrays of
  data pointers and sizes, and each thread takes an equal, contiguous share of the
  concatenated elements, so 2,000 small tensors cost one call, not 2,000.
* Per-tensor sums (LAMB's trust ratio) are measured before the step: a small tensor by the
  thread that steps it, right before (`LOCAL`), a large one by all threads, chunk by chunk.
* A global norm (gradient clipping) is a first pass over the gradients inside the same
  parallel region, summed in a fixed order (the same bits for any number of threads).
* Each loop prefetches the rows it reads (`PREFETCH` elements ahead).
* Square roots are IEEE and inline, as in torch's fused kernels (with ``roots`` given,
  torch.sqrt's own routine instead, for the eager path's bits).
* The source is plain C (no torch headers; the kernel links the OpenMP runtime torch has
  already loaded), so gcc builds it in well under a second; the shared library is cached
  on disk under a hash of its source, compiler and CPU, so later processes load it in
  milliseconds. A kernel that fails to build is not tried again (per kernel).

`optimlab.fused.engine` decides when to call it; `optimlab.fused.cuda` is its GPU twin.
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
import time
from array import array
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from . import codegen
from .spec import Elementwise

#: Counters of the kernel cache: ``compiles`` (gcc runs), ``disk_loads`` (kernels
#: loaded from the on-disk cache), ``lookups`` (kernel look-ups at a step). A test proves
#: "no recompilation" by these.
stats: Counter = Counter()
#: Seconds spent compiling and loading, per kernel key (printed by the benchmark).
compile_seconds: dict[str, float] = {}

DTYPES = {torch.float32: "float", torch.float64: "double"}
#: No flag changes a result: no contraction into FMAs (each op rounds as torch's does),
#: no reassociation; -fno-trapping-math (we never unmask FP exceptions) lets gcc turn a
#: branch on a per-step scalar into a vector select.
_FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off", "-fopenmp",
          "-shared", "-fPIC", "-std=gnu11"]
#: Below this many elements a kernel call runs on one thread (a parallel region costs
#: more than it saves).
_PARALLEL_MIN = 1 << 16

#: How far ahead (elements) the loops prefetch each row they read, one cache line per 16
#: elements: this machine's cores fetch too few lines on their own to reach the memory's
#: bandwidth from two threads (benchmarks/step_speed.py: Adam's step 7-8 % faster, a
#: measuring pass ~30 %).
PREFETCH = 1024

#: With per-tensor sums, a tensor of at most this many elements is measured and stepped by
#: one thread, the measured streams still in its core's cache when it steps (1 MB per
#: float32 stream, in a 2 MB L2), and with no barrier between the threads: LAMB's, LARS's,
#: MARS's and the cautious chains' steps ~20 % faster on model (b) of benchmarks/step_speed.py.
LOCAL = 1 << 18

_kernels: dict[tuple, Any] = {}
_failed: dict[tuple, str] = {}


#: The C storage type of each dtype the kernels take, and how an element is loaded into
#: the compute type ``T`` and stored back (16-bit floats: computed in float, rounded to
#: nearest even at the store, as torch's fused kernels do; float16's conversions are written
#: with integer operations, which gcc vectorizes, where ``_Float16`` casts it does not).
STORAGE = {
    torch.float32: ("float", "{}", "{}"),
    torch.float64: ("double", "{}", "{}"),
    torch.float16: ("uint16_t", "f16_load({})", "f16_store({})"),
    torch.bfloat16: ("uint16_t", "bf16_load({})", "bf16_store({})"),
}
#: The compute type of each dtype: float for float32 and the 16-bit floats.
COMPUTE = {torch.float32: "float", torch.float64: "double", torch.float16: "float", torch.bfloat16: "float"}

_PRELUDE = """\
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <omp.h>
typedef {T} T;
typedef void (*roots_fn)(int n, const T *a, T *r);
{storage}
{helpers}#define BLOCK 4096
#define PREFETCH {prefetch}
/* square roots of a block, in place: torch's routine if given, else IEEE sqrt */
static inline void roots(roots_fn f, int64_t m, T *x) {{
    if (f) {{ f((int)m, x, x); return; }}
    for (int64_t i = 0; i < m; i++) x[i] = SQRT(x[i]);
}}
/* bfloat16 as torch converts it: the top half of a float, rounded to nearest even */
static inline float bf16_load(uint16_t h) {{ uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }}
static inline uint16_t bf16_store(float f) {{
    uint32_t u; memcpy(&u, &f, 4);
    return f != f ? (uint16_t)0x7FC0 : (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}}
/* float16 (F. Giesen's branch-free conversions): exact to float, and back rounded to
   nearest even, overflowing to infinity; NaN becomes 0x7E00 with its sign, as torch's */
static inline float f16_load(uint16_t h) {{
    uint32_t u = (uint32_t)(h & 0x7FFFu) << 13, exponent = u & 0x0F800000u;
    float f, magic;
    uint32_t m = 113u << 23;
    memcpy(&magic, &m, 4);
    u += (127u - 15u) << 23;
    if (exponent == 0x0F800000u) u += (128u - 16u) << 23;  /* infinity, NaN */
    memcpy(&f, &u, 4);
    if (exponent == 0) {{ u += 1u << 23; memcpy(&f, &u, 4); f -= magic; }}  /* zero, subnormal */
    memcpy(&u, &f, 4);
    u |= (uint32_t)(h & 0x8000u) << 16;
    memcpy(&f, &u, 4);
    return f;
}}
static inline uint16_t f16_store(float x) {{
    uint32_t f, sign, o;
    memcpy(&f, &x, 4);
    sign = f & 0x80000000u;
    f ^= sign;
    uint32_t magic_bits = ((127u - 15u) + (23u - 10u) + 1u) << 23;
    float magic, small;
    memcpy(&magic, &magic_bits, 4);
    memcpy(&small, &f, 4);
    small += magic;  /* a subnormal result: the float addition rounds it */
    uint32_t small_bits;
    memcpy(&small_bits, &small, 4);
    uint32_t normal = (f + ((uint32_t)(15 - 127) << 23) + 0xFFFu + ((f >> 13) & 1u)) >> 13;
    o = f >= ((127u + 16u) << 23) ? (f > (255u << 23) ? 0x7E00u : 0x7C00u)
        : f < (113u << 23) ? small_bits - magic_bits : normal;
    return (uint16_t)(o | (sign >> 16));
}}
"""

_KERNEL = """
static void span(SP *restrict P, const SP *restrict G{buffer_params}, int64_t s, int64_t e, const double *k,
                 const double *tk, const double *tc, roots_fn f) {{
{scalar_loads}
    T ub[BLOCK], pb[BLOCK], r0b[BLOCK], r1b[BLOCK];
    (void)ub; (void)pb; (void)r0b; (void)r1b; (void)f; (void)tk; (void)tc;
    for (int64_t b = s; b < e; b += BLOCK) {{
        int64_t m = e - b < BLOCK ? e - b : BLOCK;
{stages}
    }}
}}

/* Sum of squares into 16 lanes: a fixed order that still vectorizes. */
static inline void squares(const SP *restrict x, int64_t m, double *restrict acc) {{
    int64_t i = 0;
    for (; i + 16 <= m; i += 16) {{
        __builtin_prefetch(&x[i + PREFETCH]);
        for (int l = 0; l < 16; l++) {{ double v = (double)({load_g_il}); acc[l] += v * v; }}
    }}
    for (int l = 0; i + l < m; l++) {{ double v = (double)({load_g_il}); acc[l] += v * v; }}
}}

/* The sum of squares of chunk c of the concatenated gradients (elements [c * BLOCK,
   (c + 1) * BLOCK); `ends` are the tensors' cumulative sizes): the same bits whichever
   thread computes it. */
static double chunk_squares(int64_t n, void **ptrs, const int64_t *sizes, const int64_t *ends, int64_t total, int64_t c) {{
    int64_t start = c * BLOCK, stop = start + BLOCK < total ? start + BLOCK : total;
    int64_t first = 0, last = n - 1;  /* binary search: the first tensor that ends after start */
    while (first < last) {{
        int64_t mid = (first + last) / 2;
        if (ends[mid] > start) last = mid; else first = mid + 1;
    }}
    double acc[16] = {{0}}, sum = 0;
    for (int64_t i = first, at = ends[first] - sizes[first]; i < n && at < stop; at += sizes[i], i++) {{
        int64_t s = start > at ? start - at : 0, e = stop - at < sizes[i] ? stop - at : sizes[i];
        squares((const SP *)ptrs[n + i] + s, e - s, acc);
    }}
    for (int l = 0; l < 16; l++) sum += acc[l];
    return sum;
}}
{reduce}
/* k: the per-step scalars; the kernel writes its bucket scalars back into their slots.
   tc: the per-tensor coefficients, {coefficients} per tensor. */
int optimlab_step(int64_t n, void **ptrs, const int64_t *sizes, double *k, const double *tc, int threads,
                  roots_fn f) {{
    int64_t total = 0;
    for (int64_t i = 0; i < n; i++) total += sizes[i];
    if (total < {parallel_min}) threads = 1;
    int64_t chunks = (total + BLOCK - 1) / BLOCK; (void)chunks;
    double *sums = NULL, *tk = NULL;
    int64_t *ends = NULL, *firsts = NULL; (void)firsts;
#if NORM_PASS
    sums = malloc((chunks + 1) * sizeof(double));
    ends = malloc(n * sizeof(int64_t));
    if (!sums || !ends) {{ free(sums); free(ends); return 1; }}
    for (int64_t i = 0; i < n; i++) ends[i] = (i ? ends[i - 1] : 0) + sizes[i];
#endif
#if SUMS
    /* each tensor's own chunks: tensor i has chunks firsts[i] .. firsts[i + 1] - 1 */
    firsts = malloc((n + 1) * sizeof(int64_t));
    if (!firsts) {{ free(sums); free(ends); return 1; }}
    firsts[0] = 0;
    for (int64_t i = 0; i < n; i++) firsts[i + 1] = firsts[i] + (sizes[i] + BLOCK - 1) / BLOCK;
    double *partials = malloc((firsts[n] * {sums} + 1) * sizeof(double));
    tk = malloc((n * {tensor_slots} + 1) * sizeof(double));
    if (!partials || !tk) {{ free(partials); free(tk); free(firsts); free(sums); free(ends); return 1; }}
#endif
    /* With per-tensor sums, a tensor of at most LOCAL elements is measured and stepped by one
       thread, the one whose share of these tensors' elements holds its start: its second
       read comes from that core's cache, and no thread waits for another. The others are
       shared: their chunks measured by all threads, then stepped in equal shares. */
    int64_t shared = 0, local = 0;
    for (int64_t i = 0; i < n; i++) {{ if (IS_LOCAL(i)) local += sizes[i]; else shared += sizes[i]; }}
    double found = 0; (void)found;
#if WITNESS
    found = witness(n, ptrs, sizes, k, tc);
#endif
    #pragma omp parallel num_threads(threads) if (threads > 1)
    {{
        int nt = omp_get_num_threads(), tid = omp_get_thread_num();
        double kk[{slots} + 1];
        for (int i = 0; i < {slots}; i++) kk[i] = k[i];
{norm}{local}{per_tensor}
        /* an equal share of the shared tensors' concatenated elements, cut at multiples of BLOCK */
        int64_t lo = shared * tid / nt / BLOCK * BLOCK;
        int64_t hi = tid == nt - 1 ? shared : shared * (tid + 1) / nt / BLOCK * BLOCK;
        int64_t base = 0;
        for (int64_t i = 0; i < n && base < hi; i++) {{
            if (IS_LOCAL(i)) continue;
            int64_t s = lo > base ? lo - base : 0;
            int64_t e = hi - base < sizes[i] ? hi - base : sizes[i];
            if (s < e) span((SP *)ptrs[i], (const SP *)ptrs[n + i]{buffer_args}, s, e, kk, tk + i * {tensor_slots},
                            tc + i * {coefficients}, f);
            base += sizes[i];
        }}
    }}
#if SUMS
    free(partials);
    free(firsts);
#endif
    free(tk);
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

#: Per-tensor sums: the chain up to the part that reads them, run over each chunk of each
#: tensor without storing anything (`reduce_chunk`), its sums kept per chunk; then each
#: tensor's chunk sums added in order and its scalars computed (the same bits for any
#: number of threads); then the step. A witnessed kernel (`_WITNESS`) runs the whole chain
#: through the same loop instead (`step_chunk`: the sums on the way, the step stored): the
#: same lanes, the same order, the same sums.
_CHUNK = """
static void {name}(SP *restrict P, const SP *restrict G{buffer_params}, int64_t s, int64_t e, const double *k,
                   const double *tc, double *out) {{
{scalar_loads}
    (void)tc;
    double acc[{sums}][16];
    for (int r = 0; r < {sums}; r++) for (int l = 0; l < 16; l++) acc[r][l] = 0;
    for (int64_t b = s; b < e; b += 16) {{
        const int lanes = e - b < 16 ? (int)(e - b) : 16;  /* a countable loop: it vectorizes */
{prefetch}
        for (int l = 0; l < lanes; l++) {{
            const int64_t j = b + l; (void)j;
            T p = {load_p}, u = {load_u}, R0 = 0, R1 = 0; (void)R0; (void)R1;
{loads}
{body}
{accumulate}
{after}
        }}
    }}
    for (int r = 0; r < {sums}; r++) {{ double sum = 0; for (int l = 0; l < 16; l++) sum += acc[r][l]; out[r] = sum; }}
}}
"""

_CHUNK_SUMS = """\
        #pragma omp for schedule(dynamic, 4)
        for (int64_t c = 0; c < firsts[n]; c++) {{  /* every chunk of every tensor, a large tensor's too */
            int64_t i = 0, last = n - 1;  /* binary search: the tensor whose chunks hold c */
            while (i < last) {{
                int64_t mid = (i + last) / 2;
                if (firsts[mid + 1] > c) last = mid; else i = mid + 1;
            }}
            if (IS_LOCAL(i)) continue;
            int64_t s = (c - firsts[i]) * BLOCK, e = s + BLOCK < sizes[i] ? s + BLOCK : sizes[i];
            reduce_chunk((SP *)ptrs[i], (const SP *)ptrs[n + i]{buffer_args}, s, e, kk, tc + i * {coefficients},
                         partials + c * {sums});
        }}
"""

_TENSOR_SCALARS = """\
        #pragma omp for
        for (int64_t i = 0; i < n; i++) {{
            if (IS_LOCAL(i)) continue;
            double q[{sums}];
            for (int r = 0; r < {sums}; r++) {{
                q[r] = 0;
                for (int64_t c = firsts[i]; c < firsts[i + 1]; c++) q[r] += partials[c * {sums} + r];
            }}
{tensor_scalars}
        }}
"""

#: A thread's small tensors (`LOCAL`): each one's chunks measured, its scalars computed, and
#: then it is stepped, by the thread whose share of these tensors' elements holds its start.
_LOCAL = """\
        for (int64_t i = 0, at = 0; i < n; i++) {{
            if (!IS_LOCAL(i)) continue;
            int64_t start = at;
            at += sizes[i];
            if (start < local * tid / nt || start >= local * (tid + 1) / nt) continue;
            double q[{sums}];
            for (int r = 0; r < {sums}; r++) q[r] = 0;
            for (int64_t c = firsts[i]; c < firsts[i + 1]; c++) {{
                int64_t s = (c - firsts[i]) * BLOCK, e = s + BLOCK < sizes[i] ? s + BLOCK : sizes[i];
                reduce_chunk((SP *)ptrs[i], (const SP *)ptrs[n + i]{buffer_args}, s, e, kk, tc + i * {coefficients},
                             partials + c * {sums});
                for (int r = 0; r < {sums}; r++) q[r] += partials[c * {sums} + r];
            }}
{tensor_scalars}
            span((SP *)ptrs[i], (const SP *)ptrs[n + i]{buffer_args}, 0, sizes[i], kk, tk + i * {tensor_slots},
                 tc + i * {coefficients}, f);
        }}
"""

#: Bucket scalars: every thread adds all the chunks' sums in order (after the chunk loop's
#: barrier) and computes the scalars in its own ``kk``; thread 0 hands them back in ``k``.
_BUCKET_SCALARS = """\
        {{
            double q[{sums}];
            for (int r = 0; r < {sums}; r++) {{
                q[r] = 0;
                for (int64_t c = 0; c < firsts[n]; c++) q[r] += partials[c * {sums} + r];
            }}
{bucket_scalars}
            if (tid == 0) {{ {handed_back} }}
        }}
"""

#: A witness (`spec.BucketSums.witness`): the chain up to its part, element by element from
#: the first, storing nothing, until one satisfies the condition (as a rule the first does).
_WITNESS = """
static int witness(int64_t n, void **ptrs, const int64_t *sizes, const double *k, const double *tcs) {{
    for (int64_t i = 0; i < n; i++) {{
        SP *restrict P = (SP *)ptrs[i];
        const SP *restrict G = (const SP *)ptrs[n + i];
{buffer_locals}
        const double *tc = tcs + i * {coefficients}; (void)tc;
{scalar_loads}
        for (int64_t j = 0; j < sizes[i]; j++) {{
            T p = {load_p}, u = {load_u}, R0 = 0, R1 = 0; (void)R0; (void)R1;
{loads}
{body}
            if ({condition}) return 1;
        }}
    }}
    return 0;
}}
"""

#: With a witness: every chunk of every tensor stepped (and summed) by whichever thread takes it.
_WITNESSED_STEP = """\
        kk[{slot}] = found;
        #pragma omp for schedule(dynamic, 4)
        for (int64_t c = 0; c < firsts[n]; c++) {{
            int64_t i = 0, last = n - 1;  /* binary search: the tensor whose chunks hold c */
            while (i < last) {{
                int64_t mid = (i + last) / 2;
                if (firsts[mid + 1] > c) last = mid; else i = mid + 1;
            }}
            int64_t s = (c - firsts[i]) * BLOCK, e = s + BLOCK < sizes[i] ? s + BLOCK : sizes[i];
            step_chunk((SP *)ptrs[i], (const SP *)ptrs[n + i]{buffer_args}, s, e, kk, tc + i * {coefficients},
                       partials + c * {sums});
        }}
"""

_STAGE = """\
        for (int64_t i0 = 0; i0 < m; i0 += 16) {{
{prefetch}
        const int64_t i1 = m - i0 < 16 ? m : i0 + 16;
        for (int64_t i = i0; i < i1; i++) {{
            const int64_t j = b + i; (void)j;
            T p = {load_p}, u = {load_u}, R0 = {load_r0}, R1 = {load_r1};
{loads}
{body}
{stores}
        }}
        }}
"""


def generate(specs: list[Elementwise], ctype: str, inline_roots: bool = True, norm_in_kernel: bool = True,
             storage: tuple[torch.dtype, ...] | None = None, emits: bool = False) -> tuple[str, list[tuple[int, str]]]:
    """The C source of the chain's kernel and its per-step scalars, as (part, name).

    With ``emits`` the parts are a run of a chain before a part that is not elementwise:
    the kernel stores the updates into a last row (after the buffers) and leaves the
    parameters as they are.

    ``ctype`` is the type the arithmetic runs in; ``storage`` the dtype of each row in
    memory (params and grads, then each buffer; default: all ``ctype``).

    The loop body is `codegen.assemble`'s. With ``inline_roots`` (IEEE square roots) it
    is one stage; else a block of elements goes through one stage, then the square roots
    of the block's registers (torch's routine, the kernel's ``f``), then the next stage;
    all in cache, one read and one write of memory.

    A part with a ``norm`` scalar gets it computed per step from the global norm of the
    gradients: measured by the kernel (``norm_in_kernel``) or given as the scalar
    ``(part, "norm")``. A part with ``per_tensor`` scalars gets them from sums over each
    tensor, measured by the kernel in a first pass (`_CHUNK`); a part with ``bucket_sums``,
    from the same sums over the whole bucket, written back into their slots of ``k``.
    """
    body = codegen.assemble(specs, inline_roots, norm_as_scalar=not norm_in_kernel, buffer="b{}", ends_chain=not emits)
    by_dtype = {"float": torch.float32, "double": torch.float64}
    storage = storage or (by_dtype[ctype],) * (1 + body.buffer_count)
    kinds = [STORAGE[dtype] for dtype in storage]
    typedefs = [f"typedef {kinds[0][0]} SP;"] + [f"typedef {kind[0]} SB{i};" for i, kind in enumerate(kinds[1:])]
    load = lambda row, x: kinds[row][1].format(x)  # noqa: E731
    store = lambda row, x: kinds[row][2].format(x)  # noqa: E731

    def buffer_io(text: str, reads: bool = True) -> tuple[str, str]:
        """Loads into, and stores from, the locals ``b{i}`` of the buffers ``text`` uses."""
        used = [i for i in range(body.buffer_count) if re.search(rf"\bb{i}\b", text)]
        loads = " ".join(f"T b{i} = {load(i + 1, f'B{i}[j]')};" for i in used)
        written = [i for i in used if re.search(rf"\bb{i}\s*=(?!=)", text)]
        return " " * 12 + loads, " " * 12 + " ".join(f"B{i}[j] = {store(i + 1, f'b{i}')};" for i in written)

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
        loads, stores = buffer_io(text)
        blocks.append(_STAGE.format(
            prefetch=_prefetches(text if first else "", body.buffer_count, "b + i0", 12),
            load_p=load(0, "P[j]") if first else "pb[i]", load_u=load(0, "G[j]") if first else "ub[i]",
            load_r0="0" if first else "r0b[i]", load_r1="0" if first else "r1b[i]",
            loads=loads, body=text or "            ;",
            stores=stores + (f"O[j] = {store(0, 'u')};" if last and emits else f"P[j] = {store(0, 'p')};" if last else
                             "pb[i] = p; ub[i] = u; r0b[i] = R0; r1b[i] = R1;"),
        ))
        if not last:
            blocks.append("".join(f"        roots(f, m, r{r}b);\n" for r in (0, 1) if f"R{r}" in text))
    buffer_params = "".join(f", SB{i} *restrict B{i}" for i in range(body.buffer_count))
    buffer_args = "".join(f", (SB{i} *)ptrs[{i + 2} * n + i]" for i in range(body.buffer_count))
    if emits:
        buffer_params += ", SP *restrict O"
        buffer_args += f", (SP *)ptrs[{body.buffer_count + 2} * n + i]"
    k_loads = "\n".join(f"    const T k{i} = (T)k[{i}];" for i in range(len(body.scalars)))
    k_loads += "".join(f"\n    const T c{q} = (T)tc[{q}];" for q in range(len(body.tensor_coefficients)))
    t_loads = "".join(f"\n    const T t{q} = (T)tk[{q}];" for q in range(len(body.tensor_scalars)))
    coefficients = len(body.tensor_coefficients)
    reduce = per_tensor = local = ""
    sums = body.tensor_sums
    if sums:
        (statements,) = body.stages
        text = "\n".join(" " * 12 + statement for statement in statements[:body.reduced_after])
        measured = text + "\n" + "\n".join(sums)
        loads, _ = buffer_io(measured)  # the sums may read the part's own buffers
        accumulate = "\n".join(f"            acc[{r}][l] += (double)({expression});" for r, expression in enumerate(sums))
        chunk = functools.partial(_CHUNK.format, buffer_params=buffer_params, scalar_loads=k_loads, sums=len(sums),
                                  load_p=load(0, "P[j]"), load_u=load(0, "G[j]"), body=text or "            ;",
                                  accumulate=accumulate)
        reduce = chunk(name="reduce_chunk", prefetch=_prefetches(measured, body.buffer_count, "b", 8), loads=loads,
                       after="")
        per_tensor = _CHUNK_SUMS.format(buffer_args=buffer_args, sums=len(sums), coefficients=coefficients)
        if body.witness is not None:
            if emits or norm_code:
                raise ValueError("a witness: in a chain that ends with its part, without a global norm")
            slot, condition = body.witness
            statements = [" " * 12 + statement for statement in body.stages[0]]
            everything = "\n".join(statements) + "\n" + "\n".join(sums) + "\n" + condition
            loads, stores = buffer_io(everything)
            reduce = _WITNESS.format(
                scalar_loads=k_loads, coefficients=coefficients,
                buffer_locals="\n".join(f"        SB{i} *restrict B{i} = (SB{i} *)ptrs[{i + 2} * n + i];"
                                         for i in range(body.buffer_count)),
                load_p=load(0, "P[j]"), load_u=load(0, "G[j]"), loads=loads, body=text or "            ;",
                condition=condition,
            ) + chunk(name="step_chunk", prefetch=_prefetches(everything, body.buffer_count, "b", 8), loads=loads,
                      after="\n".join(statements[body.reduced_after:]) + "\n" + stores + f" P[j] = {store(0, 'p')};")
            per_tensor = _WITNESSED_STEP.format(slot=slot, buffer_args=buffer_args, sums=len(sums),
                                                coefficients=coefficients)
        if body.bucket_scalars:
            per_tensor += _BUCKET_SCALARS.format(
                sums=len(sums),
                bucket_scalars="\n".join(f"            kk[{slot}] = (double)({expression});"
                                         for slot, expression in body.bucket_scalars),
                handed_back=" ".join(f"k[{slot}] = kk[{slot}];" for slot, _ in body.bucket_scalars),
            )
        else:
            tensor_scalars = "\n".join(f"            tk[i * {len(body.tensor_scalars)} + {q}] = (double)({expression});"
                                       for q, expression in enumerate(body.tensor_scalars))
            per_tensor += _TENSOR_SCALARS.format(sums=len(sums), tensor_scalars=tensor_scalars)
            local = _LOCAL.format(sums=len(sums), tensor_scalars=tensor_scalars, buffer_args=buffer_args,
                                  tensor_slots=len(body.tensor_scalars), coefficients=coefficients)
    # (with a witness every tensor is stepped chunk by chunk: none is left to the shared shares)
    is_local = "1" if body.witness is not None else f"({int(bool(local))} && sizes[i] <= {LOCAL})"
    source = (f"#define NORM_PASS {int(bool(norm_code) and norm_in_kernel)}\n#define SUMS {int(bool(sums))}\n"
              f"#define WITNESS {int(body.witness is not None)}\n#define IS_LOCAL(i) {is_local}\n")
    source += _PRELUDE.format(prefetch=PREFETCH, T=ctype, storage="\n".join(typedefs),
                              helpers=codegen.helpers(ctype, "static inline"))
    source += _KERNEL.format(
        buffer_params=buffer_params,
        buffer_args=buffer_args,
        scalar_loads=k_loads + t_loads,
        stages="".join(blocks),
        parallel_min=_PARALLEL_MIN,
        slots=len(body.scalars),
        norm=norm_code,
        per_tensor=per_tensor,
        local=local,
        reduce=reduce,
        sums=max(1, len(sums)),
        tensor_slots=len(body.tensor_scalars),
        coefficients=coefficients,
        load_g_il=load(0, "x[i + l]"),
    )
    return source, list(body.scalars)


def _prefetches(text: str, buffer_count: int, at: str, indent: int) -> str:
    """A prefetch of element ``at`` + PREFETCH of each row the loop body ``text`` reads (the
    parameters for ``p``, the gradients for ``u``, buffer ``i`` for ``b{i}``)."""
    rows = [row for row, name in (("P", "p"), ("G", "u")) if re.search(rf"\b{name}\b", text)]
    rows += [f"B{i}" for i in range(buffer_count) if re.search(rf"\bb{i}\b", text)]
    return " " * indent + " ".join(f"__builtin_prefetch(&{row}[{at} + PREFETCH]);" for row in rows)


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


def roots_routine(dtype: torch.dtype, bit_exact: bool) -> int | None:
    """The routine the kernel calls for square roots (None: inline IEEE sqrt): torch.sqrt's
    own in ``bit_exact`` mode, for float32 and float64 (16-bit floats compute in float32
    registers, as torch's fused kernels do: no eager bits to give)."""
    return _torch_sqrt_routine(dtype) if bit_exact and dtype in DTYPES else None


# --- Compilation and the cache --------------------------------------------------------
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


def _library(source: str, cache: Path):
    """The loaded kernel library for ``source``: from ``cache`` on disk, or compiled now."""
    compiler, fingerprint = _toolchain()
    key = hashlib.sha256((fingerprint + source).encode()).hexdigest()[:24]
    path = cache / f"optimlab_{key}.so"
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
    function.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                         ctypes.c_int, ctypes.c_void_p]
    compile_seconds[key] = time.perf_counter() - started
    return function


def kernel(specs: list[Elementwise], dtypes: tuple[torch.dtype, ...], norm_in_kernel: bool, bit_exact: bool,
           cache: Path, emits: bool = False):
    """(kernel function, scalar slots) for the chain over rows of ``dtypes`` (the params'
    and grads', then each buffer's; with ``emits``, see `generate`, then the updates'), built
    at most once; the library is kept in ``cache``, so a later process loads it. Raises
    RuntimeError if it cannot be built (and at once, without trying again, for a kernel
    that failed before)."""
    inline_roots = roots_routine(dtypes[0], bit_exact) is None or any(s.measures or s.wraps for s in specs)
    key = (tuple((s.code, s.apply, s.buffers, s.norm, s.per_tensor, s.bucket_sums, s.wraps, s.tensor_coefficients)
                 for s in specs), dtypes, inline_roots, norm_in_kernel, emits)
    stats["lookups"] += 1

    def build():
        source, slots = generate(specs, COMPUTE[dtypes[0]], inline_roots, norm_in_kernel, dtypes, emits)
        try:
            return _library(source, cache), slots
        except (OSError, subprocess.SubprocessError) as error:
            raise RuntimeError(f"building a fused kernel failed: {error}") from error

    return codegen.cached(_kernels, _failed, key, build)


def available() -> bool:
    """Whether a C compiler is there to build kernels."""
    try:
        _toolchain()
        return True
    except (RuntimeError, OSError, subprocess.SubprocessError):
        return False


def run(function, rows: list[list[torch.Tensor]], sizes: list[int], scalars: list[float], threads: int,
        roots: int | None, coefficients: list[float] = ()) -> array:
    """Call ``function`` (as `kernel` gives it) over ``rows`` (params, grads, buffers...),
    with ``coefficients`` the per-tensor coefficients, tensor by tensor. Returns the
    scalars, with the bucket scalars the kernel computed in their slots."""
    scalars = array("d", scalars)
    coefficients = array("d", coefficients or (0.0,))
    pointers = array("q", [pointer for row in rows for pointer in map(torch.Tensor.data_ptr, row)])
    counts = array("q", sizes)
    if function(len(sizes), pointers.buffer_info()[0], counts.buffer_info()[0],
                scalars.buffer_info()[0] if len(scalars) else None, coefficients.buffer_info()[0], threads, roots):
        raise MemoryError("optimlab: the fused kernel could not allocate its global-norm buffer")
    return scalars
