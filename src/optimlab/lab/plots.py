"""The report's figures, written as PNG files (matplotlib, headless)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .problems.test_functions import FUNCTIONS  # noqa: E402
from .results import ProblemResult, Results  # noqa: E402


def _colors(names: list[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab20")
    return {name: cmap(i % 20) for i, name in enumerate(names)}


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def curves(problem: ProblemResult, path: Path) -> Path:
    """Training loss and held-out metric over steps: mean over seeds, band from min to max."""
    fig, (loss_ax, metric_ax) = plt.subplots(1, 2, figsize=(13, 4.5))
    colors = _colors(list(problem.optimizers))
    for result in problem.ranking():
        runs = [r for r in result.reruns if not r.failed and r.steps]
        if not runs:
            continue
        steps = np.array(runs[0].steps)
        for ax, attr in ((loss_ax, "train_loss"), (metric_ax, "metric")):
            values = np.array([getattr(r, attr) for r in runs])
            ax.plot(steps, values.mean(0), color=colors[result.optimizer], label=result.optimizer, lw=1.5)
            ax.fill_between(steps, values.min(0), values.max(0), color=colors[result.optimizer], alpha=0.2)
    spec = problem.spec
    if spec.target is not None:
        metric_ax.axhline(spec.target, color="black", ls="--", lw=1, label="target")
    loss_ax.set(title=f"{spec.name}: training loss", xlabel="step", ylabel="training loss")
    metric_ax.set(title=f"{spec.name}: held-out {spec.metric}", xlabel="step", ylabel=spec.metric)
    if all(v > 0 for line in loss_ax.get_lines() for v in line.get_ydata()) and loss_ax.get_lines():
        loss_ax.set_yscale("log")
    if spec.name in FUNCTIONS:
        metric_ax.set_yscale("symlog", linthresh=1e-3)
    metric_ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def sensitivity(problem: ProblemResult, path: Path) -> Path:
    """Final validation metric against learning rate for every tuning run; crosses mark divergence."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colors = _colors(list(problem.optimizers))
    finite = [r.final_metric for res in problem.optimizers.values() for r in res.tuning if not r.failed]
    top = max(finite) if finite and not problem.spec.higher_is_better else (min(finite) if finite else 0)
    for name, result in problem.optimizers.items():
        runs = sorted(result.tuning, key=lambda r: r.hparams["lr"])
        ok = [r for r in runs if not r.failed]
        ax.plot([r.hparams["lr"] for r in ok], [r.final_metric for r in ok], "o-", ms=3, color=colors[name], label=name)
        failed = [r.hparams["lr"] for r in runs if r.failed]
        ax.plot(failed, [top] * len(failed), "x", color=colors[name], ms=7)
    ax.set_xscale("log")
    if problem.spec.name in FUNCTIONS:
        ax.set_yscale("symlog", linthresh=1e-3)
    ax.set(title=f"{problem.spec.name}: learning-rate sensitivity (x = diverged)", xlabel="learning rate",
           ylabel=f"final validation {problem.spec.metric}")
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def trajectories(problem: ProblemResult, path: Path) -> Path:
    """Paths of the best setting (first rerun seed) over the function's contour, one panel each."""
    fn = FUNCTIONS[problem.spec.name]
    results = problem.ranking()
    cols = 5
    rows = math.ceil(len(results) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    xmin, xmax, ymin, ymax = fn.bounds
    x, y = np.meshgrid(np.linspace(xmin, xmax, 200), np.linspace(ymin, ymax, 200))
    z = fn.f(torch.tensor(x), torch.tensor(y)).numpy() - fn.minimum
    levels = np.logspace(-3, np.log10(max(z.max(), 1e-2)), 15)
    for ax in axes.flat[len(results):]:
        ax.axis("off")
    for ax, result in zip(axes.flat, results):
        ax.contour(x, y, z, levels=levels, cmap="Greys", linewidths=0.6, norm=matplotlib.colors.LogNorm())
        run = next(iter(result.reruns), None)
        if run is not None and run.trajectory:
            path_xy = np.array(run.trajectory)
            ax.plot(path_xy[:, 0], path_xy[:, 1], "-", color="tab:red", lw=1)
            ax.plot(*path_xy[0], "o", color="tab:blue", ms=4)
            ax.plot(*path_xy[-1], "*", color="tab:red", ms=8)
        lr = f"lr {result.best_hparams['lr']:.2g}" if result.best_hparams else "all diverged"
        ax.set_title(f"{result.optimizer} ({lr})", fontsize=9)
        ax.set(xlim=(xmin, xmax), ylim=(ymin, ymax))
        ax.tick_params(labelsize=7)
    fig.suptitle(f"{problem.spec.name}: trajectories of each optimizer's best setting", fontsize=11)
    return _save(fig, path)


def performance_profile(results: Results, path: Path) -> Path:
    taus = np.logspace(0, 2, 200)
    profile = results.performance_profile(taus)
    colors = _colors(results.optimizers)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, fractions in sorted(profile.items(), key=lambda kv: -kv[1].sum()):
        ax.step(taus, fractions, where="post", color=colors[name], label=name)
    ax.set_xscale("log")
    ax.set(xlabel="tau: time to target within this factor of the fastest", ylim=(-0.02, 1.02),
           ylabel="fraction of problems", title=f"Performance profile over {len(results.problems)} problems")
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)
