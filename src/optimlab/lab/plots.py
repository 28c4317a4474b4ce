"""The report's figures, written as PNG files (matplotlib, headless).

Readable at a glance: at most `HIGHLIGHT` optimizers in colour (the best by rank), the rest thin
and grey; legends outside the data; log scales where values span decades (the 2-D functions are
drawn as the gap to their minimum); the target drawn; diverged runs as markers on the plot's edge,
never stretching an axis.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.transforms as mtransforms  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .files import atomic_write_bytes  # noqa: E402
from .problems.test_functions import FUNCTIONS  # noqa: E402
from .results import ProblemResult, Results  # noqa: E402

HIGHLIGHT = 6
GREY = "#b8b8b8"


def _styles(ranked: list[str]) -> dict[str, dict]:
    """Line style per optimizer: the first `HIGHLIGHT` of ``ranked`` in distinct colours and
    labelled, the others grey, thin and behind."""
    palette = plt.get_cmap("tab10").colors
    return {name: ({"color": palette[i], "lw": 1.8, "label": name, "zorder": 3} if i < HIGHLIGHT
                   else {"color": GREY, "lw": 0.8, "label": "_nolegend_", "zorder": 1})
            for i, name in enumerate(ranked)}


def _legend(ax, others: int, order: list[str]) -> None:
    """The legend beside the axes, in rank order, with one entry for the grey lines."""
    handles, labels = ax.get_legend_handles_labels()
    place = {name: i for i, name in enumerate(order)}
    pairs = sorted(zip(handles, labels), key=lambda hl: place.get(hl[1], len(order)))
    handles, labels = [h for h, _ in pairs], [label for _, label in pairs]
    if others:
        handles.append(matplotlib.lines.Line2D([], [], color=GREY, lw=0.8))
        labels.append(f"{others} others")
    if handles:
        ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def _log_if_decades(ax, values: list[float], axis: str = "y") -> None:
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    if positive and len(positive) == len(values) and max(positive) / min(positive) > 30:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")


def _save(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)  # the figures' constrained layout keeps legends in
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _metric(problem: ProblemResult):
    """(transform of a metric value for plotting, axis label): a 2-D function's gap to its minimum."""
    spec = problem.spec
    if spec.name in FUNCTIONS:
        minimum = FUNCTIONS[spec.name].minimum
        return (lambda v: max(v - minimum, 1e-12)), f"{spec.metric} - minimum"
    return (lambda v: v), spec.metric


def curves(problem: ProblemResult, path: Path) -> Path:
    """Training loss and held-out metric over steps: median over seeds, band from min to max."""
    two_d = problem.spec.name in FUNCTIONS  # the training loss is the function itself: one panel
    fig, axes = plt.subplots(1, 1 if two_d else 2, figsize=(7 if two_d else 12, 4.2), squeeze=False,
                             layout="constrained")
    metric_ax, loss_ax = axes[0][-1], (None if two_d else axes[0][0])
    ranked = [r.optimizer for r in problem.ranking()]
    styles = _styles(ranked)
    shown, value_of = [], _metric(problem)[0]
    for result in reversed(problem.ranking()):  # the best drawn last, on top
        runs = [r for r in result.reruns if not r.failed and r.steps]
        if not runs:
            continue
        steps = np.array(runs[0].steps)
        panels = [(metric_ax, [[value_of(v) for v in r.metric] for r in runs])]
        panels += [(loss_ax, [r.train_loss for r in runs])] if loss_ax else []
        for ax, values in panels:
            values = np.array(values)
            ax.plot(steps, np.median(values, 0), **styles[result.optimizer])
            if styles[result.optimizer]["zorder"] > 1:
                ax.fill_between(steps, values.min(0), values.max(0), color=styles[result.optimizer]["color"],
                                alpha=0.15, lw=0)
            shown += list(values.ravel()) if ax is metric_ax else []
    spec = problem.spec
    label = _metric(problem)[1]
    if spec.target is not None:
        metric_ax.axhline(value_of(spec.target), color="black", ls="--", lw=1, label="target")
    if loss_ax:
        loss_ax.set(title="training loss", xlabel="step", ylabel="training loss (median over seeds)")
        _log_if_decades(loss_ax, [v for line in loss_ax.get_lines() for v in line.get_ydata()])
    metric_ax.set(title=f"held-out {label}", xlabel="step", ylabel=label)
    _log_if_decades(metric_ax, shown)
    fig.suptitle(f"{spec.name}: the chosen setting of each optimizer (median and range over seeds)", fontsize=11)
    _legend(metric_ax, max(0, len(ranked) - HIGHLIGHT), ranked)
    return _save(fig, path)


def sensitivity(problem: ProblemResult, path: Path) -> Path:
    return _save(sensitivity_figure(problem), path)


def sensitivity_figure(problem: ProblemResult):
    """Final validation metric against learning rate for every tuning run; diverged runs are
    crosses on the top edge, outside the data's axis range."""
    fig, ax = plt.subplots(figsize=(9, 4.2), layout="constrained")
    ranked = [r.optimizer for r in problem.ranking()]
    styles = _styles(ranked)
    value_of, label = _metric(problem)
    edge = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
    values = []
    for name in reversed(ranked):
        result = problem.optimizers[name]
        style = styles[name]
        runs = sorted((r for r in result.tuning if "lr" in r.hparams), key=lambda r: r.hparams["lr"])
        ok = [r for r in runs if not r.failed]
        values += [value_of(r.final_metric) for r in ok]
        ax.plot([r.hparams["lr"] for r in ok], [value_of(r.final_metric) for r in ok], "o-", ms=3, **style)
        failed = [r.hparams["lr"] for r in runs if r.failed]
        ax.plot(failed, [1.02] * len(failed), "x", color=style["color"], ms=6, transform=edge, clip_on=False,
                zorder=style["zorder"])
    ax.set_xscale("log")
    _log_if_decades(ax, values)
    if problem.spec.target is not None:
        ax.axhline(value_of(problem.spec.target), color="black", ls="--", lw=1, label="target")
    ax.set(xlabel="learning rate", ylabel=f"final validation {label}")
    ax.set_title(f"{problem.spec.name}: learning-rate sensitivity (x on the top edge = diverged)", pad=14)
    _legend(ax, max(0, len(ranked) - HIGHLIGHT), ranked)
    return fig


def trajectories(problem: ProblemResult, path: Path) -> Path:
    """Paths of the chosen setting (first rerun seed) over the function's contour, one panel
    each in rank order; the minima are marked."""
    fn = FUNCTIONS[problem.spec.name]
    ranks = problem.ranks()
    results = problem.ranking()
    cols = 6
    rows = math.ceil(len(results) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.5 * rows), squeeze=False, layout="constrained")
    xmin, xmax, ymin, ymax = fn.bounds
    x, y = np.meshgrid(np.linspace(xmin, xmax, 120), np.linspace(ymin, ymax, 120))
    z = fn.f(torch.tensor(x), torch.tensor(y)).numpy() - fn.minimum
    levels = np.logspace(-3, np.log10(max(z.max(), 1e-2)), 15)
    for ax in axes.flat[len(results):]:
        ax.axis("off")
    for ax, result in zip(axes.flat, results):
        ax.contour(x, y, np.maximum(z, 1e-12), levels=levels, cmap="Greys", linewidths=0.5,
                   norm=matplotlib.colors.LogNorm())
        ax.plot(*zip(*fn.minimizers), "*", color="gold", mec="black", mew=0.6, ms=11, zorder=4)
        run = next(iter(result.reruns), None)
        if run is not None and run.trajectory:
            path_xy = np.array(run.trajectory)
            ax.plot(path_xy[:, 0], path_xy[:, 1], "-", color="tab:red", lw=1)
            ax.plot(*path_xy[0], "o", color="tab:blue", ms=4)
            ax.plot(*path_xy[-1], "o", color="tab:red", ms=3)
        lr = f"lr {result.best_hparams['lr']:.2g}" if result.best_hparams else "all diverged"
        ax.set_title(f"#{ranks[result.optimizer]} {result.optimizer} ({lr})", fontsize=8)
        ax.set(xlim=(xmin, xmax), ylim=(ymin, ymax), xticks=[], yticks=[])
    fig.suptitle(f"{problem.spec.name}: path of each optimizer's chosen setting (blue start, star = minimum)",
                 fontsize=10)
    return _save(fig, path)


def performance_profile(results: Results, path: Path) -> Path:
    """AlgoPerf's performance profile on steps to target, up to r_max = 4."""
    taus = np.linspace(1.0, 4.0, 301)
    profile = results.performance_profile(taus)
    ranked = [row.optimizer for row in results.leaderboard()]
    styles = _styles(ranked)
    fig, ax = plt.subplots(figsize=(9, 4.2), layout="constrained")
    for name in reversed(ranked):
        ax.step(taus, profile[name], where="post", **styles[name])
    ax.set(xlabel="tau: steps to target within this factor of the best optimizer's", ylim=(-0.03, 1.03),
           ylabel="fraction of problems", title="Performance profile (higher and further left is better)")
    _legend(ax, max(0, len(ranked) - HIGHLIGHT), ranked)
    return _save(fig, path)
