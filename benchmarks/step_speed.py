"""Optimizer step speed: optimlab (fused path) against torch.optim's paths, and against
pytorch-optimizer's and heavyball's implementations where torch.optim has none.

For each algorithm and model size, the implementations run interleaved in one process
(round-robin, one step each, after warm-up; every one's gradients set again before its
step, outside the timing) and the median step time is reported, with the ratio to the
fastest other implementation of the same algorithm (torch's fastest path, or the fastest
rival; the median of step-by-step ratios, so that a slow spell of a shared machine
cancels out), the time per byte moved against torch's fused Adam (also run interleaved),
the effective bandwidth (bytes each step must move / time) against a STREAM-like triad
run interleaved in the same row, and optimizer-state bytes per parameter.

Rivals run eager and compiled (``--rival-modes``): pytorch-optimizer's step under
``torch.compile(dynamic=True)``, heavyball with its own compilation (its default; eager is
``heavyball.utils.compile_mode = None``). Each implementation's first step is reported
(a compiled one's: every step until one makes no new graph, compiling included); one
still compiling at its third step recompiles at every step (pytorch-optimizer's, where
its bias corrections are Python floats, constants to dynamo) and is reported so, untimed.

    python benchmarks/step_speed.py                       # everything (long)
    python benchmarks/step_speed.py --models a,b,c --algos adam,sgd --steps 15
    python benchmarks/step_speed.py --algos adopt,ademamix,mars,adabelief,lion --rival-modes eager
    python benchmarks/step_speed.py --json out.json --markdown out.md

Models: (a) one tensor of 10M elements, (b) ~200 tensors totalling 10M (a
transformer-like mix of matrices, vectors and embeddings), (c) 2,000 tensors totalling
1M, (d) 100M elements in ~200 tensors (beyond the CPU caches). In float32, and in
bfloat16 for the algorithms torch has a fused kernel of (``--dtypes``): there the
yardstick per byte is torch's fused Adam in bfloat16.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

import optimlab
from optimlab.fused import cpu, cuda, engine


def clipped_adamw(params, **options):
    """A composed chain: global-norm clipping + Adam + decoupled weight decay (its torch
    row is plain AdamW, without the clipping, the issue's yardstick: within 1.2x)."""
    transform = optimlab.chain(
        optimlab.clip_by_global_norm(1.0), optimlab.scale_by_adam(),
        optimlab.add_decayed_weights(0.01), optimlab.scale_by_learning_rate(1e-3),
    )
    return optimlab.Optimizer(params, transform, **options)


_REFERENCE = "torch fused adam (per-byte yardstick)"
_TRIAD = "triad"
#: A compiled implementation steps until a step makes no new graph, at most this many times;
#: one still compiling at the last recompiles at every step and is reported so, untimed.
_SETTLE_STEPS = 3

#: A rival: (params, compiled) -> its step, a function of no arguments.
Rival = Callable[[list[torch.Tensor], bool], Callable[[], object]]


def _pytorch_optimizer(name: str, around=None, **kwargs) -> Rival:
    """pytorch-optimizer's ``name`` (``around``: a wrapper's, around the torch optimizer
    ``around(params)``: its Lookahead); compiled: ``torch.compile`` of its ``step``, with
    ``dynamic=True`` so that its step count (a Python int) is a symbol rather than a
    constant (its Lion then settles; the bias corrections of the others, Python floats,
    still make a graph per step)."""
    def make(params, compiled):
        import pytorch_optimizer

        optimizer = getattr(pytorch_optimizer, name)(params if around is None else around(params), **kwargs)
        return torch.compile(optimizer.step, dynamic=True) if compiled else optimizer.step

    return make


def _heavyball(name: str, **kwargs) -> Rival:
    """heavyball's ``name``. heavyball compiles its update functions itself (its default,
    ``heavyball.utils.compile_mode = "max-autotune-no-cudagraphs"``): that is the compiled
    mode; eager runs the same step with ``compile_mode = None``."""
    def make(params, compiled):
        import heavyball

        optimizer = getattr(heavyball, name)(params, **kwargs)
        if compiled:
            return optimizer.step

        def eager_step():
            mode, heavyball.utils.compile_mode = heavyball.utils.compile_mode, None
            try:
                optimizer.step()
            finally:
                heavyball.utils.compile_mode = mode

        return eager_step

    return make


def _reference_package(module: str, name: str, train_mode: bool = False, **kwargs) -> Rival:
    """The reference package's ``module.name`` (schedulefree, prodigyopt, dadaptation;
    ``train_mode``: its ``train()`` first, as Schedule-Free needs); compiled as pytorch-optimizer's."""
    def make(params, compiled):
        optimizer = getattr(importlib.import_module(module), name)(params, **kwargs)
        if train_mode:
            optimizer.train()
        return torch.compile(optimizer.step, dynamic=True) if compiled else optimizer.step

    return make


def _in_train_mode(cls):
    """A Schedule-Free optimlab class, built in train mode."""
    def make(params, **kwargs):
        optimizer = cls(params, **kwargs)
        optimizer.train()
        return optimizer

    return make


def _lookahead_adamw(params, fused=None, **kwargs):
    return optimlab.Optimizer(params, optimlab.lookahead(optimlab.adamw(**kwargs)), fused=fused)


@dataclass(frozen=True)
class Algo:
    """One algorithm's row: optimlab's optimizer (run with ``fused=True``), what runs beside
    it, and what a step must move."""

    optimlab: Callable[..., torch.optim.Optimizer]
    kwargs: dict  # for optimlab and the torch twin (a rival takes its own, the same values)
    buffers: int  # state buffers per parameter, each read and written once a step
    twin: type[torch.optim.Optimizer] | None = None  # torch.optim's
    torch_paths: tuple[str, ...] = ()
    rivals: dict[str, Rival] = field(default_factory=dict)  # library: its implementation, eager and compiled
    norm_reads: int = 0  # streams a norm pass must read before the step (a global clip, per-tensor ratios)
    read_only: int = 0  # of the buffers, those only read (Prodigy's x0)
    # each tensor given as a 1 x n matrix: a rival that skips 1-D tensors does the algorithm's work
    matrices: bool = False


#: name: its row. A rival is given optimlab's hyperparameters where its own defaults differ.
ALGOS = {
    "sgd": Algo(optimlab.SGD, {"lr": 1e-3, "momentum": 0.9}, 1, torch.optim.SGD, ("foreach", "fused")),
    "adam": Algo(optimlab.Adam, {"lr": 1e-3}, 2, torch.optim.Adam, ("foreach", "fused")),
    "adamw": Algo(optimlab.AdamW, {"lr": 1e-3}, 2, torch.optim.AdamW, ("foreach", "fused")),
    "adagrad": Algo(optimlab.Adagrad, {"lr": 1e-2}, 1, torch.optim.Adagrad, ("foreach", "fused")),
    "rmsprop": Algo(optimlab.RMSprop, {"lr": 1e-3}, 1, torch.optim.RMSprop, ("foreach",)),
    "adadelta": Algo(optimlab.Adadelta, {}, 2, torch.optim.Adadelta, ("foreach",)),
    "adamax": Algo(optimlab.Adamax, {"lr": 2e-3}, 2, torch.optim.Adamax, ("foreach",)),
    "nadam": Algo(optimlab.NAdam, {"lr": 2e-3}, 2, torch.optim.NAdam, ("foreach",)),
    "radam": Algo(optimlab.RAdam, {"lr": 1e-3}, 2, torch.optim.RAdam, ("foreach",)),
    # its torch twin is plain AdamW; the global norm reads the gradients once more
    "clip+adamw": Algo(clipped_adamw, {"lr": 1e-3}, 2, torch.optim.AdamW, ("foreach", "fused"), norm_reads=1),
    "adopt": Algo(optimlab.ADOPT, {"lr": 1e-3}, 2, rivals={
        "pytorch-optimizer": _pytorch_optimizer("ADOPT", lr=1e-3),
        "heavyball": _heavyball("ADOPT", lr=1e-3, betas=(0.9, 0.9999), eps=1e-6)}),
    "ademamix": Algo(optimlab.AdEMAMix, {"lr": 1e-3}, 3, rivals={
        "pytorch-optimizer": _pytorch_optimizer("AdEMAMix", lr=1e-3),
        "heavyball": _heavyball("AdEMAMix", lr=1e-3, alpha=5.0)}),
    # Buffers m, v and the previous gradient; each tensor's ||c_t|| reads g and that first.
    # The parameters here are all 1-D, which pytorch-optimizer's MARS hands to AdamW unless
    # optimize_1d; heavyball's mars=True is a correction without the per-tensor clipping.
    "mars": Algo(optimlab.MARS, {"lr": 3e-3}, 3, norm_reads=2, rivals={
        "pytorch-optimizer": _pytorch_optimizer("MARS", lr=3e-3, optimize_1d=True)}),
    "adabelief": Algo(optimlab.AdaBelief, {"lr": 1e-3}, 2, rivals={
        "pytorch-optimizer": _pytorch_optimizer("AdaBelief", lr=1e-3)}),
    "lion": Algo(optimlab.Lion, {"lr": 1e-4}, 1, rivals={"pytorch-optimizer": _pytorch_optimizer("Lion", lr=1e-4)}),
    # The per-tensor pass reads what the chain up to the reduction reads: LAMB's ||p|| and
    # ||u|| p, g, m, v; LARS's ||p||, ||g||; Cautious's mask count g and the inner state.
    "lamb": Algo(optimlab.LAMB, {"lr": 1e-3}, 2, norm_reads=4, rivals={
        "pytorch-optimizer": _pytorch_optimizer("Lamb", lr=1e-3)}),
    # pytorch-optimizer's LARS leaves 1-D tensors unscaled (momentum SGD, no norm pass)
    "lars": Algo(optimlab.LARS, {"lr": 1e-3}, 1, norm_reads=2, matrices=True, rivals={
        "pytorch-optimizer": _pytorch_optimizer("LARS", lr=1e-3)}),
    "cautious_adamw": Algo(optimlab.CautiousAdamW, {"lr": 1e-3}, 2, norm_reads=3, rivals={
        "heavyball": _heavyball("AdamW", lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-2, caution=True)}),
    "cautious_lion": Algo(optimlab.CautiousLion, {"lr": 1e-4}, 1, norm_reads=2, rivals={
        "pytorch-optimizer": _pytorch_optimizer("Lion", lr=1e-4, cautious=True)}),
    # Lookahead's slow weights are a third buffer (read and written at every step by the kernel).
    "lookahead+adamw": Algo(_lookahead_adamw, {"lr": 1e-3}, 3, rivals={
        "pytorch-optimizer": _pytorch_optimizer("Lookahead", around=lambda ps: torch.optim.AdamW(ps, lr=1e-3))}),
    "schedulefree_sgd": Algo(_in_train_mode(optimlab.ScheduleFreeSGD), {"lr": 1.0}, 2, rivals={  # z, momentum-free
        "reference": _reference_package("schedulefree", "SGDScheduleFree", train_mode=True, lr=1.0)}),
    "schedulefree_adamw": Algo(_in_train_mode(optimlab.ScheduleFreeAdamW), {"lr": 2.5e-3}, 2, rivals={
        "reference": _reference_package("schedulefree", "AdamWScheduleFree", train_mode=True, lr=2.5e-3)}),
    # m, v, s and x0 (read only), and the bucket sums' pass over g, x, x0, s first
    "prodigy": Algo(optimlab.Prodigy, {"lr": 1.0}, 4, norm_reads=4, read_only=1, rivals={
        "reference": _reference_package("prodigyopt", "Prodigy", lr=1.0)}),
    # one pass: its kernel steps once an element proves the step (its first, as a rule)
    "dadapt_adam": Algo(optimlab.DAdaptAdam, {"lr": 1.0}, 3, rivals={
        "reference": _reference_package("dadaptation", "DAdaptAdam", lr=1.0)}),
}
#: the rivals' columns, in this order ("reference": the algorithm's own package)
LIBRARIES = ("pytorch-optimizer", "heavyball", "reference")


def model_sizes(kind: str) -> list[int]:
    if kind == "a":
        return [10_000_000]
    if kind == "c":
        return [500] * 2000
    total = 10_000_000 if kind == "b" else 100_000_000
    # ~200 tensors: per block a d x 4d and 4d x d matrix, a d x d, biases and norms.
    d, sizes = 256, []
    while len(sizes) < 190:
        sizes += [d * 4 * d, 4 * d * d, d * d, 4 * d, d, d, d]
    scale = total / sum(sizes)
    sizes = [max(1, int(s * scale)) for s in sizes]
    sizes[0] += total - sum(sizes)
    return sizes


def make_params(sizes, device, dtype=torch.float32, matrices=False):
    """The parameters and their gradients, kept apart: each step sets ``.grad`` again
    (heavyball sets it to None after its step); with ``matrices``, of shape 1 x size."""
    shapes = [(1, s) if matrices else (s,) for s in sizes]
    params = [torch.randn(shape, device=device, dtype=dtype, requires_grad=True) for shape in shapes]
    return params, [torch.randn_like(p) * 1e-3 for p in params]


def set_grads(params, grads) -> None:
    for p, g in zip(params, grads):
        p.grad = g


class Triad:
    """The in-place update a += s*b over two arrays of n floats (2 reads, 1 write counted;
    by default 1 GiB each, beyond the caches), run as one more "optimizer" in each row:
    the bandwidth the machine gives at that moment."""

    def __init__(self, n: int, device: torch.device) -> None:
        self.a, self.b = torch.randn(n, device=device), torch.randn(n, device=device)
        self.bytes = 3 * 4 * n

    def step(self) -> None:
        self.a.add_(self.b, alpha=1e-3)


def first_steps(step, params, grads, compiled, sync) -> tuple[float, bool]:
    """An implementation's first step (for optimlab, building or loading its kernel), in
    seconds. A compiled one steps until a step makes no new graph: the seconds of the steps
    that compiled, and whether it settled within ``_SETTLE_STEPS``."""
    graphs = torch._dynamo.utils.counters["stats"]
    seconds = 0.0
    for _ in range(_SETTLE_STEPS if compiled else 1):
        if params is not None:
            set_grads(params, grads)
        before = graphs["unique_graphs"]
        start = time.perf_counter()
        step()
        sync()
        if compiled and graphs["unique_graphs"] == before:
            return seconds, True
        seconds += time.perf_counter() - start
    return seconds, not compiled


def bench_algo(name, sizes, steps, warmup, loop, triad, device, dtype=torch.float32, rival_modes=("eager",)):
    algo = ALGOS[name]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if algo.rivals and "compiled" in rival_modes:
        torch._dynamo.reset()  # a fresh cache per row: torch's recompile limit counts per code object
    impls, first_step, recompiling = {}, {}, []

    def add(label, make, compiled=False):
        params, grads = make_params(sizes, device, dtype, algo.matrices)
        try:
            step = make(params)
            first_step[label], settled = first_steps(step, params, grads, compiled, sync)
        except Exception as error:  # noqa: BLE001 (e.g. a fused kernel torch has on CPU only, a failed compile)
            if label == "optimlab":
                raise
            print(f"  ({name}: {label} unavailable on {device.type}: {type(error).__name__}: {error})", flush=True)
            return
        if settled:
            impls[label] = (params, grads, step)
        else:
            recompiling.append(label)

    add("optimlab", lambda ps: algo.optimlab(ps, fused=True, **algo.kwargs).step)
    options = {"forloop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    for path in (("forloop",) if loop else ()) + algo.torch_paths:
        add(f"torch {path}", lambda ps: algo.twin(ps, **algo.kwargs, **options[path]).step)
    for library in LIBRARIES:
        for mode in rival_modes if library in algo.rivals else ():
            compiled = mode == "compiled"
            add(f"{library} {mode}", lambda ps: algo.rivals[library](ps, compiled), compiled)
    if name != "adam":  # the yardstick per byte, interleaved like the others
        add(_REFERENCE, lambda ps: torch.optim.Adam(ps, lr=1e-3, fused=True).step)
    impls[_TRIAD] = (None, None, triad.step)
    times = {key: [] for key in impls}
    for i in range(warmup + steps):
        for key, (params, grads, step) in impls.items():
            if params is not None:
                set_grads(params, grads)
            sync()
            start = time.perf_counter()
            step()
            sync()
            if i >= warmup:
                times[key].append(time.perf_counter() - start)
    numel = sum(sizes)
    size = dtype.itemsize
    # p read and written, g read, each buffer read and written, and a norm pass's reads
    moved = numel * size * (3 + 2 * algo.buffers - algo.read_only + algo.norm_reads)
    medians = {key: statistics.median(v) for key, v in times.items()}
    fastest = min((k for k in medians if k not in ("optimlab", _REFERENCE, _TRIAD)), key=medians.get, default=None)
    triad_GBps = [triad.bytes / t / 1e9 for t in times[_TRIAD]]
    reference = times.get(_REFERENCE, times.get("torch fused"))
    adam_moved = numel * size * 7  # p read+write, g read, two moments read+write
    del impls
    return {
        "algo": name, "dtype": str(dtype).removeprefix("torch."), "tensors": len(sizes), "elements": numel,
        "bytes_moved": moved, "state_bytes_per_param": size * algo.buffers, "median_s": medians,
        "first_step_s": first_step, "recompiling": recompiling, "fastest": fastest,
        # Step by step against the step of the fastest other implementation taken right after
        # it: a slow spell of the machine (other tenants) slows both, so it cancels out.
        "ratio": statistics.median(a / b for a, b in zip(times["optimlab"], times[fastest])) if fastest else None,
        "per_byte_vs_torch_fused_adam": statistics.median(
            (a / moved) / (b / adam_moved) for a, b in zip(times["optimlab"], reference)
        ),
        "GBps": moved / medians["optimlab"] / 1e9,
        "triad_GBps": statistics.median(triad_GBps),
        "bandwidth_fraction": statistics.median(moved / t / 1e9 / bw for t, bw in zip(times["optimlab"], triad_GBps)),
    }


def markdown(results, info, rival_modes) -> list[str]:
    """Two tables: the algorithms with a torch.optim twin against its paths, and those with
    rivals against pytorch-optimizer's and heavyball's implementations."""
    lines = [
        f"torch {info['torch']}, {info['device']}, {info['threads']} threads, triad {info['triad_GBps']:.1f} GB/s "
        f"(median over rows), {'bit-exact' if engine.bit_exact else 'default'} fused path. Times are medians (ms).",
    ]

    def row(r, cells, ratio):
        return "| " + " | ".join((f"({r['model']}) {r['tensors']}x", r["algo"], r["dtype"], *cells, ratio,
                                  f"{r['GBps']:.1f} ({100 * r['bandwidth_fraction']:.0f}%)",
                                  f"{r['per_byte_vs_torch_fused_adam']:.2f}", str(r["state_bytes_per_param"]))) + " |"

    twins = [r for r in results if ALGOS[r["algo"]].twin]
    if twins:
        lines += ["", "| model | algorithm | dtype | optimlab | torch for-loop | torch foreach | torch fused | ratio | "
                  "GB/s (% of triad) | per byte vs fused Adam | state B/param |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in twins:
            m = r["median_s"]
            cells = [f"{m[label] * 1e3:.2f}" if label in m else "-"
                     for label in ("optimlab", "torch forloop", "torch foreach", "torch fused")]
            lines.append(row(r, cells, f"{r['ratio']:.2f}" if r["fastest"] else "-"))
    rivalled = [r for r in results if ALGOS[r["algo"]].rivals]
    if rivalled:
        libraries = [library for library in LIBRARIES if any(library in ALGOS[r["algo"]].rivals for r in rivalled)]
        columns = [f"{library} {mode}" for library in libraries for mode in rival_modes]
        lines += ["", "Against pytorch-optimizer, heavyball and the reference packages: median step (ms) and, in parentheses, the first "
                  "step (s; compiled: every step until one makes no new graph, compiling included). "
                  "ratio: optimlab / the fastest other implementation (named), the median of step-by-step ratios.",
                  "", "| model | algorithm | dtype | optimlab | " + " | ".join(columns) +
                  " | ratio (vs) | GB/s (% of triad) | per byte vs fused Adam | state B/param |",
                  "|---|---|---|---|" + "---|" * len(columns) + "---|---|---|---|"]
        for r in rivalled:
            m, first = r["median_s"], r["first_step_s"]
            cells = [f"{m[label] * 1e3:.2f} ({first[label]:.2f} s)" if label in m else
                     f"recompiles every step ({first[label]:.1f} s for {_SETTLE_STEPS})" if label in r["recompiling"]
                     else "-" for label in ("optimlab", *columns)]
            lines.append(row(r, cells, f"{r['ratio']:.2f} ({r['fastest']})" if r["fastest"] else "-"))
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="a,b,c,d")
    parser.add_argument("--algos", default=",".join(ALGOS))
    parser.add_argument("--dtypes", default="float32,bfloat16",
                        help="parameter dtypes; 16-bit ones only for algorithms torch has a fused kernel of")
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--loop", action="store_true", help="also torch's for-loop path")
    parser.add_argument("--rival-modes", default="eager,compiled",
                        help="the other libraries' implementations: eager, compiled (torch.compile of "
                             "pytorch-optimizer's step; heavyball's own compilation) or both")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--bit-exact", action="store_true",
                        help="the fused path in its bit-exact mode (OPTIMLAB_BIT_EXACT=1): torch.sqrt's "
                             "square roots and torch's global norm, the eager path's bits")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (optimlab's CUDA kernels, timed with "
                        "a device synchronization around each step)")
    parser.add_argument("--triad-elements", type=int, default=1 << 28,
                        help="elements of each triad array (default 2**28: 1 GiB, beyond the caches)")
    parser.add_argument("--json", default="benchmarks/step_speed.json")
    parser.add_argument("--markdown", default="benchmarks/step_speed.md")
    args = parser.parse_args(argv)
    for name in args.algos.split(","):
        if name not in ALGOS:
            parser.error(f"--algos: unknown algorithm {name!r}; valid: {', '.join(ALGOS)}")
    rival_modes = args.rival_modes.split(",")
    if not set(rival_modes) <= {"eager", "compiled"}:
        parser.error(f"--rival-modes: {args.rival_modes!r}; valid: eager, compiled or eager,compiled")
    if args.threads:
        torch.set_num_threads(args.threads)
    engine.bit_exact = args.bit_exact
    device = torch.device(args.device)
    triad = Triad(args.triad_elements, device)
    print(f"{torch.get_num_threads()} threads", flush=True)
    results = []
    for model in args.models.split(","):
        sizes = model_sizes(model)
        for dtype in (getattr(torch, name) for name in args.dtypes.split(",")):
            for name in args.algos.split(","):
                if dtype != torch.float32 and "fused" not in ALGOS[name].torch_paths:
                    continue
                steps = args.steps if model != "d" else max(5, args.steps // 3)
                r = bench_algo(name, sizes, steps, args.warmup, args.loop, triad, device, dtype, rival_modes)
                r["model"] = model
                results.append(r)
                cells = [f"{k} {v * 1e3:.2f} ms" for k, v in r["median_s"].items() if k not in (_REFERENCE, _TRIAD)]
                cells += [f"{k} recompiles every step" for k in r["recompiling"]]
                ratio = f"{r['ratio']:.2f} vs {r['fastest']}" if r["fastest"] else "-"
                print(f"({model}) {name} {r['dtype']}: {', '.join(cells)}; ratio {ratio}; {r['GBps']:.1f} GB/s "
                      f"({100 * r['bandwidth_fraction']:.0f}%); first step {r['first_step_s']['optimlab']:.2f} s",
                      flush=True)
    info = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else args.device, "bit_exact": engine.bit_exact, "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
        "triad_GBps": statistics.median(r["triad_GBps"] for r in results), "kernel_stats": {**cpu.stats, **engine.stats}, "compile_seconds": {**cpu.compile_seconds, **cuda.compile_seconds},
        "rival_modes": rival_modes,
    }
    print("kernel cache:", info["kernel_stats"], "build/load seconds:",
          {k: round(v, 3) for k, v in info["compile_seconds"].items()})
    with open(args.json, "w") as f:
        json.dump({"info": info, "results": results}, f, indent=1)
    lines = markdown(results, info, rival_modes)
    with open(args.markdown, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
