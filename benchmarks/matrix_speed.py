"""Matrix-optimizer step speed: optimlab against torch.optim, heavyball and pytorch-optimizer.

The implementations of one algorithm run interleaved in one process (round-robin, one step
each, after warm-up) on the same parameter shapes; each row reports the median step time
and, against each rival, the median of step-by-step ratios (optimlab's step over the
rival's step taken right after it, so a slow spell of a shared machine cancels out).

    python benchmarks/matrix_speed.py                          # every model and algorithm
    python benchmarks/matrix_speed.py --models transformer --algos muon --steps 20

Models: ``transformer``, 6 blocks of width 256 (q, k, v, o 256x256 and an MLP 1024x256,
256x1024: 36 matrices in 3 shapes, 2.4M weights); ``b``, benchmarks/step_speed.py's model
(b) with shapes, 27 blocks of width 200 (200x800, 800x200 and 200x200 matrices, biases
and norms' 800, 200, 200, 200 vectors: 189 tensors, 9.8M elements); ``small``, 12
transformer blocks of width 64 (72 matrices in 3 shapes, 0.6M weights: matrices small
enough to step as stacks, `optimlab.transforms.batching.STACK_WORK`); ``mlp``, the lab's
40-128-128-10 MLP's matrices (3 shapes, one matrix each). Muon's rows take the matrices
only. The gradients are fixed random tensors.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from collections.abc import Callable

import torch

import optimlab
from optimlab.fused import engine

Factory = Callable[[list[torch.Tensor]], torch.optim.Optimizer]


def _heavyball(name: str, **kwargs) -> Factory:
    def make(params):
        import heavyball

        return getattr(heavyball, name)(params, **kwargs)

    return make


def _pytorch_optimizer(name: str, group: dict | None = None, **kwargs) -> Factory:
    """pytorch-optimizer's ``name``; ``group`` adds keys to the one param group (its Muon's ``use_muon``)."""
    def make(params):
        import pytorch_optimizer

        return getattr(pytorch_optimizer, name)([{"params": params, **(group or {})}], **kwargs)

    return make


#: algorithm: {implementation: factory}; optimlab's first, every rival run beside it.
ALGOS: dict[str, dict[str, Factory]] = {
    # All in bfloat16 Newton-Schulz (torch's and optimlab's default), lr 0.02.
    "muon": {
        "optimlab": lambda ps: optimlab.Muon(ps, lr=0.02),
        "torch": lambda ps: torch.optim.Muon(ps, lr=0.02),
        "heavyball": _heavyball("Muon", lr=0.02),
        "pytorch-optimizer": _pytorch_optimizer("Muon", {"use_muon": True}, lr=0.02),
    },
    # The bases refreshed every 10 steps on all three (heavyball's default is 2, with a schedule).
    "soap": {
        "optimlab": lambda ps: optimlab.SOAP(ps, lr=3e-3),
        "heavyball": _heavyball("SOAP", lr=3e-3, precondition_frequency=10, use_precond_schedule=False),
        "pytorch-optimizer": _pytorch_optimizer("SOAP", lr=3e-3),
    },
    # Roots every 10 steps, by eigendecomposition (its use_svd), unblocked (block_size 1024, no
    # dimension merging), RMSProp-grafted (its nearest to Adam grafting). heavyball has no
    # Shampoo of these definitions (its KLShampoo is KL-corrected, ungrafted, exponent -1/2).
    "shampoo": {
        "optimlab": lambda ps: optimlab.Shampoo(ps, lr=1e-3, precondition_frequency=10),
        "pytorch-optimizer": _pytorch_optimizer("ScalableShampoo", lr=1e-3, graft_type=3, use_svd=True,  # RMSPROP
                                                preconditioning_compute_steps=10, start_preconditioning_step=10,
                                                shape_interpretation=False, block_size=1024),
    },
    # Defaults (the preconditioner refitted at every one of the first 500-1000 steps), lr 1e-3.
    "psgd_kron": {
        "optimlab": lambda ps: optimlab.PSGDKron(ps, lr=1e-3),
        "heavyball": _heavyball("PSGDKron", lr=1e-3),
        "pytorch-optimizer": _pytorch_optimizer("Kron", lr=1e-3),
    },
}


MODELS = ("transformer", "b", "small", "mlp")


def model_shapes(kind: str) -> list[tuple[int, ...]]:
    if kind == "transformer":
        d = 256
        return [(d, d)] * 4 * 6 + [(4 * d, d), (d, 4 * d)] * 6
    if kind == "b":  # benchmarks/step_speed.py's model (b) with its tensors' shapes: 27 blocks
        d = 200
        return [(d, 4 * d), (4 * d, d), (d, d), (4 * d,), (d,), (d,), (d,)] * 27
    if kind == "small":  # a small transformer: 12 blocks of width 64
        d = 64
        return [(d, d)] * 4 * 12 + [(4 * d, d), (d, 4 * d)] * 12
    if kind == "mlp":
        return [(128, 40), (128, 128), (10, 128)]
    raise ValueError(f"--models: unknown model {kind!r}; valid models: {', '.join(MODELS)}")


#: Muon (torch.optim.Muon, heavyball's, pytorch-optimizer's) takes a model's matrices only.
MATRICES_ONLY = ("muon",)


def make_params(shapes) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(shape, generator=generator) / shape[-1] ** 0.5) for shape in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=generator) * 1e-2
    return params


def bench_algo(name: str, shapes, steps: int, warmup: int) -> dict:
    impls = {}
    for label, factory in ALGOS[name].items():
        params = make_params(shapes)
        try:
            impls[label] = (params, [p.grad for p in params], factory(params))
        except Exception as error:  # noqa: BLE001 (a rival that cannot take these shapes is skipped, said)
            print(f"  ({name}: {label} unavailable: {type(error).__name__}: {error})", flush=True)
    times: dict[str, list[float]] = {label: [] for label in impls}
    # Warm up at least until optimlab's default path settles: a bucket takes its kernels
    # from the step where they pay (`engine.worthwhile`), the path of a training run.
    first = impls["optimlab"][0]
    warmup = max(warmup, next(step for step in range(1, 1 << 20) if engine.worthwhile(first, step)))
    for i in range(warmup + steps):
        for label, (params, grads, optimizer) in impls.items():
            for p, g in zip(params, grads):  # heavyball sets .grad to None after its step
                p.grad = g
            start = time.perf_counter()
            optimizer.step()
            if i >= warmup:
                times[label].append(time.perf_counter() - start)
    return {
        "algo": name, "matrices": sum(len(shape) == 2 for shape in shapes), "tensors": len(shapes),
        "elements": sum(math.prod(shape) for shape in shapes),
        "median_s": {label: statistics.median(t) for label, t in times.items()},
        "ratio": {label: statistics.median(a / b for a, b in zip(times["optimlab"], t))
                  for label, t in times.items() if label != "optimlab"},
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--algos", default=",".join(ALGOS))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", default="benchmarks/matrix_speed.json")
    parser.add_argument("--markdown", default="benchmarks/matrix_speed.md")
    args = parser.parse_args(argv)
    results = []
    for model in args.models.split(","):
        shapes = model_shapes(model)
        for name in args.algos.split(","):
            taken = [shape for shape in shapes if len(shape) == 2] if name in MATRICES_ONLY else shapes
            row = {"model": model, **bench_algo(name, taken, args.steps, args.warmup)}
            results.append(row)
            cells = ", ".join(f"{label} {t * 1e3:.2f} ms" for label, t in row["median_s"].items())
            print(f"({model}) {name}: {cells}", flush=True)
    info = {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine()}
    with open(args.json, "w") as f:
        json.dump({"info": info, "results": results}, f, indent=1)
    lines = [f"torch {info['torch']}, CPU, {info['threads']} threads. Median step times (ms); "
             "ratio = optimlab's step / the rival's (median of step-by-step ratios; < 1 is faster).", "",
             "| model | algorithm | optimlab | rivals (ms, ratio) |", "|---|---|---|---|"]
    for r in results:
        rivals = "; ".join(f"{label} {r['median_s'][label] * 1e3:.2f} ({ratio:.2f})" for label, ratio in r["ratio"].items())
        vectors = r["tensors"] - r["matrices"]
        model = f"{r['model']} ({r['matrices']} matrices" + (f", {vectors} vectors)" if vectors else ")")
        lines.append(f"| {model} | {r['algo']} | {r['median_s']['optimlab'] * 1e3:.2f} | {rivals} |")
    with open(args.markdown, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
