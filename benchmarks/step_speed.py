"""Optimizer step speed: optimlab (fused path) against torch.optim's paths.

For each algorithm and model size, the implementations run interleaved in one process
(round-robin, one step each, after warm-up) and the median step time is reported, with
the ratio to torch's fastest path for the same algorithm (the median of step-by-step
ratios, so that a slow spell of a shared machine cancels out), the time per byte moved
against torch's fused Adam (also run interleaved), the effective bandwidth (bytes each
step must move / time) against a STREAM-like triad run interleaved in the same row, and
optimizer-state bytes per parameter.

    python benchmarks/step_speed.py                       # everything (long)
    python benchmarks/step_speed.py --models a,b,c --algos adam,sgd --steps 15
    python benchmarks/step_speed.py --json out.json --markdown out.md

Models: (a) one tensor of 10M elements, (b) ~200 tensors totalling 10M (a
transformer-like mix of matrices, vectors and embeddings), (c) 2,000 tensors totalling
1M, (d) 100M elements in ~200 tensors (beyond the CPU caches). In float32, and in
bfloat16 for the algorithms torch has a fused kernel of (``--dtypes``): there the
yardstick per byte is torch's fused Adam in bfloat16.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

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

# name: (optimlab factory, torch class, kwargs, torch paths, state buffers per param,
#        reads of the gradient the math needs)
ALGOS = {
    "sgd": (optimlab.SGD, torch.optim.SGD, {"lr": 1e-3, "momentum": 0.9}, ("foreach", "fused"), 1, 1),
    "adam": (optimlab.Adam, torch.optim.Adam, {"lr": 1e-3}, ("foreach", "fused"), 2, 1),
    "adamw": (optimlab.AdamW, torch.optim.AdamW, {"lr": 1e-3}, ("foreach", "fused"), 2, 1),
    "adagrad": (optimlab.Adagrad, torch.optim.Adagrad, {"lr": 1e-2}, ("foreach", "fused"), 1, 1),
    "rmsprop": (optimlab.RMSprop, torch.optim.RMSprop, {"lr": 1e-3}, ("foreach",), 1, 1),
    "adadelta": (optimlab.Adadelta, torch.optim.Adadelta, {}, ("foreach",), 2, 1),
    "adamax": (optimlab.Adamax, torch.optim.Adamax, {"lr": 2e-3}, ("foreach",), 2, 1),
    "nadam": (optimlab.NAdam, torch.optim.NAdam, {"lr": 2e-3}, ("foreach",), 2, 1),
    "radam": (optimlab.RAdam, torch.optim.RAdam, {"lr": 1e-3}, ("foreach",), 2, 1),
    # the global norm reads the gradients once more
    "clip+adamw": (clipped_adamw, torch.optim.AdamW, {"lr": 1e-3}, ("foreach", "fused"), 2, 2),
}


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


def make_params(sizes, device, dtype=torch.float32):
    params = [torch.randn(s, device=device, dtype=dtype, requires_grad=True) for s in sizes]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    return params


class Triad:
    """The in-place update a += s*b over two arrays of n floats (2 reads, 1 write counted;
    by default 1 GiB each, beyond the caches), run as one more "optimizer" in each row:
    the bandwidth the machine gives at that moment."""

    def __init__(self, n: int, device: torch.device) -> None:
        self.a, self.b = torch.randn(n, device=device), torch.randn(n, device=device)
        self.bytes = 3 * 4 * n

    def step(self) -> None:
        self.a.add_(self.b, alpha=1e-3)


def bench_algo(name, sizes, steps, warmup, loop, triad, device, dtype=torch.float32):
    factory, torch_cls, kwargs, torch_paths, buffers, grad_reads = ALGOS[name]
    impls = {}
    compile_start = time.perf_counter()
    first = make_params(sizes, device, dtype)
    impls["optimlab"] = (first, factory(first, fused=True, **kwargs))
    impls["optimlab"][1].step()  # builds (or loads) the kernel: timed as first-step cost
    first_step = time.perf_counter() - compile_start
    for path in (("forloop",) if loop else ()) + torch_paths:
        params = make_params(sizes, device, dtype)
        option = {"forloop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}[path]
        try:
            optimizer = torch_cls(params, **kwargs, **option)
            optimizer.step()
        except (RuntimeError, ValueError) as error:  # e.g. a fused kernel torch has on CPU only
            print(f"  ({name}: torch {path} unavailable on {device.type}: {error})", flush=True)
            continue
        impls[f"torch {path}"] = (params, optimizer)
    if name != "adam":  # the yardstick per byte, interleaved like the others
        params = make_params(sizes, device, dtype)
        impls[_REFERENCE] = (params, torch.optim.Adam(params, lr=1e-3, fused=True))
    impls[_TRIAD] = (None, triad)
    times = {key: [] for key in impls}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for i in range(warmup + steps):
        for key, (_, optimizer) in impls.items():
            sync()
            start = time.perf_counter()
            optimizer.step()
            sync()
            if i >= warmup:
                times[key].append(time.perf_counter() - start)
    numel = sum(sizes)
    size = dtype.itemsize
    moved = numel * size * (2 + grad_reads + 2 * buffers)  # p read+write, g read(s), each buffer read+write
    medians = {key: statistics.median(v) for key, v in times.items()}
    fastest = min((k for k in medians if k.startswith("torch") and k != _REFERENCE), key=medians.get)
    triad_GBps = [triad.bytes / t / 1e9 for t in times[_TRIAD]]
    reference = times.get(_REFERENCE, times.get("torch fused"))
    adam_moved = numel * size * 7  # p read+write, g read, two moments read+write
    del impls
    return {
        "algo": name, "dtype": str(dtype).removeprefix("torch."), "tensors": len(sizes), "elements": numel,
        "bytes_moved": moved, "state_bytes_per_param": size * buffers, "median_s": medians, "first_step_s": first_step,
        "torch_fastest": fastest,
        # Step by step against the step of torch's fastest path taken right after it: a
        # slow spell of the machine (other tenants) slows both, so it cancels out.
        "ratio": statistics.median(a / b for a, b in zip(times["optimlab"], times[fastest])),
        "per_byte_vs_torch_fused_adam": statistics.median(
            (a / moved) / (b / adam_moved) for a, b in zip(times["optimlab"], reference)
        ),
        "GBps": moved / medians["optimlab"] / 1e9,
        "triad_GBps": statistics.median(triad_GBps),
        "bandwidth_fraction": statistics.median(moved / t / 1e9 / bw for t, bw in zip(times["optimlab"], triad_GBps)),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="a,b,c,d")
    parser.add_argument("--algos", default=",".join(ALGOS))
    parser.add_argument("--dtypes", default="float32,bfloat16",
                        help="parameter dtypes; 16-bit ones only for algorithms torch has a fused kernel of")
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--loop", action="store_true", help="also torch's for-loop path")
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
                if dtype != torch.float32 and "fused" not in ALGOS[name][3]:
                    continue
                steps = args.steps if model != "d" else max(5, args.steps // 3)
                r = bench_algo(name, sizes, steps, args.warmup, args.loop, triad, device, dtype)
                r["model"] = model
                results.append(r)
                cells = ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in r["median_s"].items()
                                  if k not in (_REFERENCE, _TRIAD))
                print(f"({model}) {name} {r['dtype']}: {cells}; ratio {r['ratio']:.2f}; {r['GBps']:.1f} GB/s "
                      f"({100 * r['bandwidth_fraction']:.0f}%); first step {r['first_step_s']:.2f} s", flush=True)
    info = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else args.device, "bit_exact": engine.bit_exact, "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
        "triad_GBps": statistics.median(r["triad_GBps"] for r in results), "kernel_stats": {**cpu.stats, **engine.stats}, "compile_seconds": {**cpu.compile_seconds, **cuda.compile_seconds},
    }
    print("kernel cache:", info["kernel_stats"], "build/load seconds:",
          {k: round(v, 3) for k, v in info["compile_seconds"].items()})
    with open(args.json, "w") as f:
        json.dump({"info": info, "results": results}, f, indent=1)
    lines = [
        f"torch {info['torch']}, {info['device']}, {info['threads']} threads, triad {info['triad_GBps']:.1f} GB/s (median over rows), "
        f"{'bit-exact' if engine.bit_exact else 'default'} fused path. Times are medians (ms).",
        "",
        "| model | algorithm | dtype | optimlab | torch for-loop | torch foreach | torch fused | ratio | GB/s (% of triad) | per byte vs fused Adam | state B/param |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        m = r["median_s"]
        cell = lambda k: f"{m[k] * 1e3:.2f}" if k in m else "-"  # noqa: E731
        lines.append(
            f"| ({r['model']}) {r['tensors']}x | {r['algo']} | {r['dtype']} | {cell('optimlab')} | {cell('torch forloop')} | "
            f"{cell('torch foreach')} | {cell('torch fused')} | {r['ratio']:.2f} | {r['GBps']:.1f} "
            f"({100 * r['bandwidth_fraction']:.0f}%) | {r['per_byte_vs_torch_fused_adam']:.2f} | {r['state_bytes_per_param']} |"
        )
    with open(args.markdown, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
