"""Shared by the sweep tests: the bench command, the deterministic content of a store, waiting on a store."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from optimlab.lab import store

PROBLEM = "saddle"
OPTIMIZERS = ("sgd", "adam")
TRIALS, SEEDS, STUDIES = 3, 2, 2
TOTAL = len(OPTIMIZERS) * STUDIES * (TRIALS + SEEDS)
#: the fields of a run record that vary from run to run; every other field must match exactly
TIMING = ("time_to_target", "train_time", "mean_step_time", "peak_rss_mb")


def bench(storage: str, out, *extra: str, optimizers=OPTIMIZERS, trials=TRIALS, seeds=SEEDS) -> list[str]:
    return [sys.executable, "-m", "optimlab.cli", "bench", "--problems", PROBLEM, "--optimizers", ",".join(optimizers),
            "--trials", str(trials), "--seeds", str(seeds), "--studies", str(STUDIES), "--storage", storage,
            "--out", str(out), *extra]


def environment(**values) -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **{k: str(v) for k, v in values.items()}}


def start(command: list[str], **env) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environment(**env))


def deterministic(url: str) -> dict:
    """(optimizer, "tune"/"seed", study) -> the runs' records without their timings, in order."""
    content = {}
    for pair in store.load_pairs(url):
        for kind, studies in (("tune", pair.tuning), ("seed", pair.reruns)):
            for study, runs in enumerate(studies):
                content[(pair.optimizer, kind, study)] = [
                    {k: v for k, v in run.to_dict().items() if k not in TIMING} for run in runs]
    return content


def done_count(url: str) -> int:
    """Finished items in the store, 0 while it is not made yet."""
    opened = store.Store(url)
    try:
        if opened.stored_plan() is None:
            return 0
        ids = opened.pair_ids([(PROBLEM, o) for o in OPTIMIZERS])
        return opened.progress(ids)[0]
    except KeyError:  # pairs not created yet
        return 0
    finally:
        opened.dispose()


def wait_until(condition, timeout: float = 120, every: float = 0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {condition}")
