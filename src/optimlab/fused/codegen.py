"""From a chain's `Elementwise` snippets to the body of one loop over elements.

Shared by the two kernels that run it: the CPU's C kernel (`optimlab.fused.engine`) and
the GPU's CUDA kernel (`optimlab.fused.cuda`). Both compile the same statements with
IEEE arithmetic and no contraction, so for the same inputs they give the same bits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from string import Template
from typing import Any, NamedTuple

from .spec import Elementwise

#: The helpers a snippet may call (spec.py), for a compiler whose functions are declared
#: with ``{inline}`` and whose math functions end in ``{suffix}`` for float.
HELPERS = """\
#define ABS(x) fabs{suffix}(x)
#define FMA(a, b, c) fma{suffix}(a, b, c)
#define SQRT(x) sqrt{suffix}(x)
/* torch's lerp: both branches, then a select, so that the loop vectorizes */
{inline} T lerp(T a, T b, T w) {{ T d = b - a, lo = FMA(w, d, a), hi = FMA(w - (T)1, d, b); return ABS(w) < (T)0.5 ? lo : hi; }}
{inline} T maximum(T a, T b) {{ return (a > b || a != a) ? a : b; }}
{inline} T min_one(T x) {{ return x > (T)1 ? (T)1 : x; }}  /* clamp(max=1): NaN stays */
"""


def helpers(ctype: str, inline: str) -> str:
    return HELPERS.format(suffix="f" if ctype == "float" else "", inline=inline)


class Norm(NamedTuple):
    """The scalar a part computes from the global norm: its slot and C expression."""

    part: int
    target: int
    expression: Template


@dataclass(frozen=True)
class Body:
    """A chain's loop body, ready to be wrapped in a kernel.

    ``stages``: statements per stage (one stage when the square roots are inline; else
    cut at each ``SQRTS;``), over ``p``, ``u``, ``R0``/``R1``, the chain's buffers (see
    `assemble`) and per-step scalar ``s`` as ``k{s}``.
    ``scalars``: the (part, name) of each ``k{s}``. ``norm``: None, or the `Norm`.
    The loop body reads per-tensor scalar ``q`` (`spec.PerTensor`) as ``t{q}``.
    """

    stages: tuple[tuple[str, ...], ...]
    scalars: tuple[tuple[int, str], ...]
    buffer_count: int
    norm: Norm | None
    #: Per-tensor sums (C expressions of an element, over ``u``, ``p``, ``b{i}`` locals and
    #: ``k{s}``), the per-tensor scalars ``t{q}`` (C expressions over the sums ``q[r]`` and
    #: ``kk[s]``), and how many statements of the one stage run before the sums are taken.
    tensor_sums: tuple[str, ...] = ()
    tensor_scalars: tuple[str, ...] = ()
    reduced_after: int = 0
    #: Bucket scalars (`spec.BucketSums`), from the sums ``q[r]`` of ``tensor_sums`` over
    #: the whole bucket: ``(slot, C expression over q[r] and kk[s])``, in order; the
    #: kernel sets ``kk[slot]`` before the step and hands it back in ``k[slot]``.
    bucket_scalars: tuple[tuple[int, str], ...] = ()
    #: `spec.BucketSums.witness`: the slot of its scalar and its condition (a C expression of
    #: an element, as ``tensor_sums``'), or None.
    witness: tuple[int, str] | None = None
    #: Per-tensor coefficients (`spec.Elementwise.tensor_coefficients`): the (part, name)
    #: of each ``c{q}``, given by the caller for each tensor.
    tensor_coefficients: tuple[tuple[int, str], ...] = ()

    def norm_expression(self, scalar) -> str:
        """The norm's C expression of ``norm``, with ``scalar(slot)`` for each scalar of
        its part that it reads (a name the kernel defines)."""
        part, _, expression = self.norm
        return expression.substitute({
            name: scalar(self.scalars.index((part, name))) for name in template_names(expression.template)
        })


def assemble(specs: list[Elementwise], inline_roots: bool, norm_as_scalar: bool = False,
             buffer: str = "b{}", ends_chain: bool = True) -> Body:
    """The parts' snippets in order, the last one ending the chain (``apply``, or
    ``p = p + u``; the one before it where the last runs `~Elementwise.after_apply`), or,
    without ``ends_chain``, leaving the updates in ``u`` (a run of parts before one that
    is not elementwise). With ``norm_as_scalar`` the global norm is the scalar ``(part,
    "norm")`` instead of something the kernel measures. ``buffer``: how the body names
    buffer ``b`` (``buffer.format(b)``)."""
    buffer_count = 0
    scalar_names: list[tuple[int, str]] = []

    def slot(index: int, name: str) -> int:
        if (index, name) not in scalar_names:
            scalar_names.append((index, name))
        return scalar_names.index((index, name))

    stages: list[list[str]] = [[]]
    norm = None
    tensor_sums: list[str] = []
    tensor_scalars: list[str] = []
    bucket_scalars: list[tuple[int, str]] = []
    tensor_coefficients: list[tuple[int, str]] = []
    witness = None
    reduced_after = 0
    final = len(specs) - 2 if specs[-1].after_apply else len(specs) - 1
    if not ends_chain:
        if specs[-1].after_apply:
            raise ValueError("a part that moves the parameters after a step must end the chain")
        final = -1
    # The registers of the wrapping parts' ``$input``, by the index of the first part each wraps.
    inputs: dict[int, list[str]] = {}
    for index, spec in enumerate(specs):
        if spec.wraps:
            inputs.setdefault(index - spec.wraps, []).append(f"w{index}")
    if inputs and not inline_roots:
        raise ValueError("a wrapping part's $input: with inline square roots")
    for index, spec in enumerate(specs):
        stages[-1].extend(f"T {register} = u;" for register in inputs.get(index, ()))
        mapping = {"input": f"w{index}"} if spec.wraps else {}
        for name in spec.buffers:
            mapping[name] = buffer.format(buffer_count)
            buffer_count += 1
        for name in spec.tensor_coefficients:
            tensor_coefficients.append((index, name))
            mapping[name] = f"c{len(tensor_coefficients) - 1}"
        code = spec.code
        if index == final:
            code = spec.apply if spec.apply is not None else code + "\np = p + u;"
        if spec.measures:
            if tensor_sums or not inline_roots:
                raise ValueError("measured sums: one part per chain, with inline square roots")
            reduced_after = len(stages[0])
            sums, scalars = (spec.per_tensor or spec.bucket_sums)[:2]
            own = {name: f"q[{r}]" for r, (name, _) in enumerate(sums)}
            coefficient = lambda name, form: form.format(slot(index, name))  # noqa: E731
            of_element = lambda expression: Template(expression).substitute(  # noqa: E731
                {**{n: coefficient(n, "k{}") for n in template_names(expression) if n not in mapping}, **mapping})
            tensor_sums.extend(of_element(expression) for _, expression in sums)
            for name, expression in scalars:
                text = Template(expression).substitute(
                    {**{n: coefficient(n, "kk[{}]") for n in template_names(expression) if n not in own}, **own})
                if spec.per_tensor is not None:
                    tensor_scalars.append(text)
                    mapping[name] = f"t{len(tensor_scalars) - 1}"
                else:  # a slot of its own, read by the later scalars as kk[slot] and by the code as k{slot}
                    bucket_scalars.append((slot(index, name), text))
            if spec.bucket_sums is not None and spec.bucket_sums.witness is not None:
                name, condition = spec.bucket_sums.witness
                read = {n for n in template_names(code)} & {n for n, _ in scalars}
                if read != {name}:
                    raise ValueError(f"a witness's part reads its scalar {name!r} only, got {sorted(read)}")
                witness = (slot(index, name), of_element(condition))
        for name in template_names(code):
            if name not in mapping:
                mapping[name] = f"k{slot(index, name)}"
        text = Template(code).substitute(mapping)
        if inline_roots:
            roots = " ".join(f"R{r} = SQRT(R{r});" for r in (0, 1) if f"R{r}" in text)
            text = text.replace("SQRTS;", roots)
        for number, piece in enumerate(text.split("SQRTS;")):
            if number:
                stages.append([])
            piece = " ".join(line.strip() for line in piece.strip().splitlines())
            if piece:
                stages[-1].append("{ " + piece + " }")
        if spec.norm is not None:
            if norm is not None:
                raise ValueError("one global norm per chain")
            name, expression = spec.norm
            for given in template_names(expression):
                slot(index, given)
            if norm_as_scalar:
                slot(index, "norm")
            norm = Norm(index, slot(index, name), Template(expression))
    return Body(tuple(map(tuple, stages)), tuple(scalar_names), buffer_count, norm, tuple(tensor_sums),
                tuple(tensor_scalars), reduced_after, tuple(bucket_scalars), witness, tuple(tensor_coefficients))


def template_names(code: str) -> list[str]:
    """The ``$names`` of a snippet, in order of appearance."""
    names = []
    for match in Template.pattern.finditer(code):
        name = match.group("named") or match.group("braced")
        if name and name not in names:
            names.append(name)
    return names


_build_lock = threading.Lock()


def cached(kernels: dict, failed: dict[Any, str], key, build: Callable[[], Any]):
    """``kernels[key]``, built by ``build()`` at most once (by one thread); a build that
    raised RuntimeError is remembered in ``failed`` and raises again at once, without
    another attempt. Both backends keep their kernels so."""
    entry = kernels.get(key)
    if entry is None:
        with _build_lock:
            entry = kernels.get(key)
            if entry is None:
                if key in failed:  # not again at every step
                    raise RuntimeError(failed[key])
                try:
                    entry = build()
                except RuntimeError as error:
                    failed[key] = str(error)
                    raise
                kernels[key] = entry
    return entry
