"""Step times that machine load cannot reorder, for ``--rank-by time``.

Every optimizer's chosen setting steps the problem's own model in one process, interleaved:
round after round, each optimizer takes a few training steps (forward, backward, step) in a
rotating order, so a burst of load falls on all of them alike. Each optimizer's step time is the
median over rounds, its noise the interquartile range; a time to target is steps to target times
step time, and two optimizers whose ranges overlap tie. The measurements are kept in
``OUT/step_times.json`` so that the same stored runs give the same verdict again.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .files import atomic_write_text
from .modes import training
from .optimizers import Candidate
from .runner import seed_everything
from .problems import Problem

ROUNDS = 21
STEPS_PER_ROUND = 5
FILE = "step_times.json"


@dataclass(frozen=True)
class StepTime:
    """Seconds per training step: median and interquartile range over interleaved rounds."""

    median: float
    low: float
    high: float


UNIT = StepTime(1.0, 1.0, 1.0)  # ranking by steps: every step costs one


def measure(problem: Problem, settings: Sequence[tuple[Candidate, dict[str, float]]],
            rounds: int = ROUNDS, steps_per_round: int = STEPS_PER_ROUND) -> dict[str, StepTime]:
    """Step times of each (candidate, hyperparameters) on ``problem``, interleaved (module doc)."""
    tasks = []
    for candidate, hparams in settings:
        seed_everything(0)
        task = problem.build(0, "test", candidate.full_batch)
        tasks.append((candidate.label, task, training(candidate.make(task.model.parameters(), hparams))))
    samples: dict[str, list[float]] = {label: [] for label, _, _ in tasks}
    step = 0
    for round_ in range(rounds + 1):  # round 0 warms up (allocation, kernel caches) and is dropped
        order = tasks[round_ % len(tasks):] + tasks[: round_ % len(tasks)]
        for label, task, optimizer in order:
            start = time.perf_counter()
            for _ in range(steps_per_round):
                step += 1
                optimizer.zero_grad(set_to_none=True)
                task.train_loss(step).backward()
                optimizer.step()
            if round_:
                samples[label].append((time.perf_counter() - start) / steps_per_round)
    return {label: _summary(values) for label, values in samples.items()}


def _summary(values: list[float]) -> StepTime:
    quartiles = statistics.quantiles(values, n=4)
    return StepTime(statistics.median(values), quartiles[0], quartiles[2])


def load(out: Path) -> dict[str, dict[str, dict]]:
    """Stored measurements: ``{problem: {optimizer: {"hparams": ..., "step_time": StepTime}}}``."""
    path = Path(out) / FILE
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return {problem: {name: {"hparams": value["hparams"], "step_time": StepTime(**value["step_time"])}
                      for name, value in found.items()} for problem, found in data.items()}


def save(out: Path, times: dict[str, dict[str, dict]]) -> None:
    data = {problem: {name: {"hparams": value["hparams"], "step_time": asdict(value["step_time"])}
                      for name, value in found.items()} for problem, found in times.items()}
    atomic_write_text(Path(out) / FILE, json.dumps(data, indent=1, sort_keys=True) + "\n")


def ensure(out: Path, results, problem_of: Callable[[str], Problem],
           candidate_of: Callable[[str], Candidate]) -> dict[str, dict[str, StepTime]]:
    """Step times of every chosen setting in ``results``, ``{problem: {optimizer: StepTime}}``.
    A problem's optimizers are measured together (interleaved) whenever one of them has no
    stored measurement of its current setting; otherwise the stored ones are used."""
    stored = load(out)
    for name, problem in results.problems.items():
        chosen = {r.optimizer: r.best_hparams for r in problem.optimizers.values() if r.best_hparams is not None}
        known = stored.get(name, {})
        if chosen and any(known.get(label, {}).get("hparams") != hparams for label, hparams in chosen.items()):
            measured = measure(problem_of(name), [(candidate_of(label), hparams) for label, hparams in chosen.items()])
            stored[name] = {label: {"hparams": chosen[label], "step_time": t} for label, t in measured.items()}
    save(out, stored)
    return {problem: {name: value["step_time"] for name, value in found.items()} for problem, found in stored.items()}
