"""A tiny sweep end to end: the report's tables match the numbers stored in the SQLite file."""

import json
import sqlite3
import statistics

import optuna
import pytest

from optimlab.lab.report import report_from_store
from optimlab.lab import store, sweep
from optimlab.lab.problems import get_problem

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


def _stored_runs(db_path):
    """(problem, optimizer, stage) -> [(trial number, state, run dict)], straight from SQLite."""
    con = sqlite3.connect(db_path)
    rows = con.execute(
        "SELECT s.study_name, t.number, t.state, a.value_json FROM trials t "
        "JOIN studies s ON s.study_id = t.study_id "
        "JOIN trial_user_attributes a ON a.trial_id = t.trial_id AND a.key = 'run' "
        "WHERE t.state IN ('COMPLETE', 'FAIL') ORDER BY t.number").fetchall()
    con.close()
    runs = {}
    for name, number, state, value in rows:
        runs.setdefault(tuple(name.split("/")), []).append((number, state, json.loads(value)))
    return runs


def _markdown_rows(summary: str, problem: str) -> dict[str, list[str]]:
    section = summary.split(f"## {problem}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split(" | ") for line in section.splitlines() if line.startswith("| ")]
    return {cells[1].strip(): [c.strip() for c in cells] for cells in rows[1:]}


def test_report_tables_match_the_store(swept):
    out, url, paths = swept
    assert paths["html"].exists() and paths["markdown"].exists()
    runs = _stored_runs(out / "optimlab.db")
    summary = paths["markdown"].read_text()
    html = paths["html"].read_text()
    for problem in PROBLEMS:
        spec = get_problem(problem).spec
        rows = _markdown_rows(summary, problem)
        assert set(rows) == set(OPTIMIZERS)
        for optimizer in OPTIMIZERS:
            tuning = runs[(problem, optimizer, "tune")][: PLAN.trials]
            assert len(tuning) == PLAN.trials
            completed = [(n, r) for n, state, r in tuning if state == "COMPLETE"]
            pick = max if spec.higher_is_better else min
            best = pick(completed, key=lambda nr: (nr[1]["metric"][-1], -nr[0] if pick is max else nr[0]))[1]
            reruns = [r for _, _, r in runs[(problem, optimizer, "seeds")] if r["hparams"] == best["hparams"]]
            assert sorted(r["seed"] for r in reruns) == list(PLAN.seed_values)
            finals = [r["metric"][-1] for r in reruns if r["diverged_at"] is None]
            row = rows[optimizer]
            assert row[2] == f"{best['hparams']['lr']:.3g}"
            assert row[3].startswith(f"{statistics.fmean(finals):.4g} ± {statistics.stdev(finals):.2g}")
            reached = sum(r["steps_to_target"] is not None for r in reruns)
            assert row[4] == f"{reached}/{PLAN.seeds}"
            diverged = sum(r["diverged_at"] is not None for _, _, r in tuning)
            assert row[9] == f"{diverged}/{PLAN.trials}"
            assert f"<td>{optimizer}</td>" in html
    for png in ("performance_profile", "saddle_trajectories", "saddle_curves", "logreg_breast_cancer_lr_sensitivity"):
        assert (out / "plots" / f"{png}.png").stat().st_size > 1000


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
