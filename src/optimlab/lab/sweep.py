"""The protocol: for each (problem, optimizer), tune with an equal trial budget on the validation
split, then rerun the best setting over several seeds on the test split. Resumable and shareable
between worker processes through the store."""

from __future__ import annotations

import multiprocessing
import os
import queue
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import optuna
import torch
from optuna.trial import TrialState

from . import store
from .problems import Problem
from .optimizers import Candidate
from .user import Sources
from .runner import run
from .selection import best_setting

TUNING_SEED = 0
POLL_SECONDS = 1.0
QUEUED_ATTR = "queued"  # marks the seed reruns this module queued
OnRun = Callable[[str, str], None]  # called with (problem, optimizer) after each finished run


@dataclass(frozen=True)
class Plan:
    """How much to run: ``trials`` tuning runs and ``seeds`` reruns per (problem, optimizer)."""

    trials: int
    seeds: int
    studies: int = 1
    sampler: str = "qmc"
    sampler_seed: int = 0

    def __post_init__(self):
        if self.studies != 1:
            raise ValueError(f"studies must be 1 with this store, got {self.studies}")
        if self.trials < 1:
            raise ValueError(f"trials must be >= 1, got {self.trials}")
        if self.seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {self.seeds}")
        store.make_sampler(self.sampler, 0)  # validates the sampler name

    @property
    def seed_values(self) -> tuple[int, ...]:
        """Rerun seeds; tuning uses seed 0, so the reruns are fresh draws."""
        return tuple(range(1, self.seeds + 1))


class PairSweep:
    """The two studies of one (problem, optimizer) and the logic to move them forward."""

    def __init__(self, storage: optuna.storages.RDBStorage, problem: Problem, candidate: Candidate, plan: Plan):
        self.problem, self.candidate, self.plan = problem, candidate, plan
        self.optimizer, self.space = candidate.label, candidate.space
        open_stage = lambda stage, budget: store.open_study(
            storage, problem.spec, candidate.label, stage, budget=budget, sampler=plan.sampler,
            sampler_seed=plan.sampler_seed)
        self.tune = open_stage("tune", plan.trials)
        self.seeds = open_stage("seeds", plan.seeds)

    def _objective(self, stage: str) -> Callable[[optuna.Trial], float]:
        def objective(trial: optuna.Trial) -> float:
            if stage == "seeds" and not trial.user_attrs.get(QUEUED_ATTR):
                raise optuna.TrialPruned("seed reruns only run queued settings")  # lost a race; ignored
            hparams = {h.name: trial.suggest_float(h.name, h.low, h.high, log=h.log) for h in self.space}
            seed = trial.suggest_int("seed", 0, 2**31 - 1) if stage == "seeds" else TUNING_SEED
            record = run(self.problem, self.candidate, hparams, seed, "test" if stage == "seeds" else "validation")
            trial.set_user_attr(store.RUN_ATTR, record.to_dict())
            return record.final_metric  # NaN for a diverged run: Optuna records the trial as FAIL

        return objective

    def best_hparams(self) -> dict[str, float] | None:
        runs = [store.record_of(t) for t in store.done_trials(self.tune)[: self.plan.trials]]
        return best_setting(self.problem.spec, [runs])

    def _missing_seeds(self, hparams: dict[str, float]) -> list[int]:
        """Rerun seeds of ``hparams`` that are neither done, nor queued, nor running."""
        states = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE, TrialState.FAIL)
        present = set()
        for trial in self.seeds.get_trials(deepcopy=False, states=states):
            setting = {**trial.system_attrs.get("fixed_params", {}), **trial.params}
            live = trial.state in (TrialState.WAITING, TrialState.RUNNING) or store.RUN_ATTR in trial.user_attrs
            if live and all(setting.get(k) == v for k, v in hparams.items()):
                present.add(setting.get("seed"))
        return [s for s in self.plan.seed_values if s not in present]

    def runs_done(self) -> int:
        tuned = min(len(store.done_trials(self.tune)), self.plan.trials)
        hparams = self.best_hparams()
        reran = 0 if hparams is None else self.plan.seeds - len(self._missing_seeds(hparams))
        return tuned + reran

    def advance(self, on_run: OnRun | None = None) -> bool:
        """Run what this worker can; True once the pair is complete (or nothing is left to rerun)."""
        name = (self.problem.name, self.optimizer)
        while True:
            running, waiting = store.pending_trials(self.tune)
            if waiting == 0 and len(store.done_trials(self.tune)) + running >= self.plan.trials:
                break
            self.tune.optimize(self._objective("tune"), n_trials=1)
            on_run and on_run(*name)
        if len(store.done_trials(self.tune)) < self.plan.trials:
            return False  # another worker is still tuning this pair
        hparams = self.best_hparams()
        if hparams is None:
            return True  # every setting diverged: nothing to rerun
        for seed in self._missing_seeds(hparams):
            self.seeds.enqueue_trial({**hparams, "seed": seed}, user_attrs={QUEUED_ATTR: True})
        while store.pending_trials(self.seeds)[1]:
            self.seeds.optimize(self._objective("seeds"), n_trials=1)
            on_run and on_run(*name)
        return not self._missing_seeds(hparams) and store.pending_trials(self.seeds) == (0, 0)


def run_pairs(storage_url: str, pairs: Sequence[tuple[Problem, Candidate]], plan: Plan, on_run: OnRun | None = None) -> None:
    """Work through the pairs until each is complete, waiting for other workers where needed."""
    storage = store.open_storage(storage_url)
    pending = [PairSweep(storage, problem, optimizer, plan) for problem, optimizer in pairs]
    while pending:
        pending = [pair for pair in pending if not pair.advance(on_run)]
        if pending:
            time.sleep(POLL_SECONDS)


def count_runs(storage_url: str, pairs: Sequence[tuple[Problem, Candidate]], plan: Plan) -> int:
    storage = store.open_storage(storage_url)
    return sum(PairSweep(storage, problem, optimizer, plan).runs_done() for problem, optimizer in pairs)


def resolve(names: Sequence[tuple[str, str]], sources: Sources) -> list[tuple[Problem, Candidate]]:
    """(problem, optimizer) names as the objects they name: built in or from the user's files."""
    return [(sources.problem(problem), sources.candidate(optimizer)) for problem, optimizer in names]


def _worker(storage_url: str, names: list[tuple[str, str]], plan: Plan, threads: int, events,
            sources: Sources) -> None:
    torch.set_num_threads(threads)
    pairs = resolve(names, sources)
    run_pairs(storage_url, pairs, plan, on_run=lambda problem, optimizer: events.put((problem, optimizer)))


def run_parallel(storage_url: str, names: Sequence[tuple[str, str]], plan: Plan, workers: int,
                 on_run: OnRun | None = None, sources: Sources = Sources()) -> None:
    """Named (problem, optimizer) pairs over ``workers`` processes, each taking every workers-th
    pair; ``sources`` adds the user's problem and optimizer files to the registries.

    With one worker it runs in this process. Several *commands* (on several machines) may also
    share one storage URL; they then split trials through the store.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    threads = max(1, (os.cpu_count() or 1) // workers)
    if workers == 1:
        torch.set_num_threads(threads)
        run_pairs(storage_url, resolve(names, sources), plan, on_run)
        return
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    processes = [context.Process(target=_worker, args=(storage_url, list(names[i::workers]), plan, threads, events, sources))
                 for i in range(workers)]
    for process in processes:
        process.start()
    try:
        while any(p.is_alive() for p in processes) or not events.empty():
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                continue
            on_run and on_run(*event)
    finally:
        for process in processes:
            if process.is_alive():  # only when this process is interrupted
                process.terminate()
            process.join()
    failed = [p.exitcode for p in processes if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"{len(failed)} sweep worker(s) failed (exit codes {failed}); re-run to resume")
