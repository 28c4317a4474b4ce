"""A tiny sweep end to end: every trial of the budget finishes, divergence is stored, re-runs run nothing."""


import optuna
import pytest

from optimlab.lab.report import report_from_store
from optimlab.lab import store, sweep

PROBLEMS = ("saddle", "logreg_breast_cancer")
OPTIMIZERS = ("sgd", "adam")
PLAN = sweep.Plan(trials=4, seeds=3)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    url = store.default_storage(out)
    sweep.run_parallel(url, [(p, o) for p in PROBLEMS for o in OPTIMIZERS], PLAN, workers=1)
    paths = report_from_store(url, out)
    return out, url, paths


def test_divergent_trials_are_failed_with_their_step(swept):
    _, url, _ = swept
    study = optuna.load_study(study_name="saddle/sgd/tune", storage=url)
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    for trial in failed:
        assert trial.user_attrs["run"]["diverged_at"] >= 1
    # the sweep went on: every trial of the budget is finished
    assert len(store.done_trials(study)) == PLAN.trials


def test_rerunning_a_finished_sweep_runs_nothing(swept):
    _, url, _ = swept
    ran = []
    sweep.run_parallel(url, [(p, o) for p in PROBLEMS for o in OPTIMIZERS], PLAN, workers=1,
                       on_run=lambda p, o: ran.append((p, o)))
    assert ran == []


def test_same_seed_same_sweep(tmp_path, swept):
    _, first_url, _ = swept
    url = store.default_storage(tmp_path)
    sweep.run_parallel(url, [("saddle", "adam")], PLAN, workers=1)
    values = lambda u, stage: [t.value for t in optuna.load_study(study_name=f"saddle/adam/{stage}", storage=u).trials]
    for stage in ("tune", "seeds"):
        assert values(url, stage) == values(first_url, stage)
