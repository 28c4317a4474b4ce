"""The report's outputs agree with each other and with the store: results.json (schema checked),
results.csv and the HTML/Markdown tables; user problems and configurations run end to end."""

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import optimlab
from optimlab.cli import app
from optimlab.lab import compare, define_problem, store
from optimlab.lab.selection import best_of_study

EXAMPLE = Path(__file__).parents[2] / "examples" / "lab_user_problem.py"
NUMBER = (int, float)
RUN_FIELDS = {"optimizer": str, "phase": str, "hparams": dict, "seed": int, "diverged": bool,
              "diverged_at": (int, type(None)), "final_metric": (*NUMBER, type(None)),
              "steps_to_target": (int, type(None))}
RANKING_FIELDS = {"optimizer": str, "rank": int, "hparams": (dict, type(None)), "steps_to_target": (*NUMBER, type(None)),
                  "seeds_held": int, "final_metric": (*NUMBER, type(None)), "fragile": bool, "flags": list}


def _linear_problem():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(600, 5, generator=generator)
    y = x @ torch.randn(5, generator=generator) + 0.1 * torch.randn(600, generator=generator)
    mse = lambda model, batch: ((model(batch[0]).squeeze(-1) - batch[1]) ** 2).mean()
    return define_problem("linear", lambda: torch.nn.Linear(5, 1), mse, (x, y), lambda m, b: mse(m, b).item(),
                          steps=150, target=0.05, metric="mse")


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    mine = {"sgd_nesterov_0.5": (lambda params, lr: optimlab.SGD(params, lr=lr, momentum=0.5, nesterov=True),
                                 {"lr": (1e-3, 1.0)})}
    results = compare(problem=_linear_problem(), optimizers=["sgd", "adam", mine], trials=3, seeds=2, out=out)
    return out, results


def _check_schema(document):
    assert set(document) >= {"meta", "problems"}
    for problem in document["problems"].values():
        assert set(problem) >= {"ranking", "recommendation", "runs"}
        for row in problem["ranking"]:
            for key, kind in RANKING_FIELDS.items():
                assert isinstance(row[key], kind), (key, row[key])
        assert [row["rank"] for row in problem["ranking"]] == sorted(row["rank"] for row in problem["ranking"])
        assert problem["recommendation"]["optimizer"] in (None, *[row["optimizer"] for row in problem["ranking"]])
        for run in problem["runs"]:
            for key, kind in RUN_FIELDS.items():
                assert isinstance(run[key], kind), (key, run[key])
            assert run["phase"] in ("tune", "seed")
            assert run["diverged"] == (run["diverged_at"] is not None)


def test_results_json_and_csv_agree_with_the_store_and_the_tables(compared):
    out, _ = compared
    document = json.loads((out / "results.json").read_text())
    _check_schema(document)
    pairs = {pair.optimizer: pair for pair in store.load_pairs(store.default_storage(out))}
    problem = document["problems"]["linear"]
    assert {row["optimizer"] for row in problem["ranking"]} == set(pairs) == {"sgd", "adam", "sgd_nesterov_0.5"}
    html = (out / "report.html").read_text()
    summary = (out / "summary.md").read_text()
    table = {cells[1]: cells for cells in (line.strip("|").split(" | ") for line in summary.splitlines()
                                           if line.startswith("| ")) if len(cells) > 5}
    rows = {row["optimizer"]: row for row in csv.DictReader((out / "results.csv").open())}
    for row in problem["ranking"]:
        pair = pairs[row["optimizer"]]
        runs = [r for r in problem["runs"] if r["optimizer"] == row["optimizer"]]
        stored_tuning = [r for study in pair.tuning for r in study]
        assert [r["final_metric"] for r in runs if r["phase"] == "tune"] == [
            None if math.isnan(r.final_metric) else r.final_metric for r in stored_tuning]
        assert row["hparams"] == best_of_study(pair.spec, pair.tuning[0]).hparams
        held = sum(r["steps_to_target"] is not None and r["final_metric"] is not None and r["final_metric"] <= 0.05
                   for r in runs if r["phase"] == "seed")
        assert row["seeds_held"] == held
        assert table[row["optimizer"]][0].strip() == str(row["rank"]) == rows[row["optimizer"]]["rank"]
        assert table[row["optimizer"]][4].strip() == f"{held}/2" == f"{rows[row['optimizer']]['seeds_held']}/2"
        assert f"<td>{row['optimizer']}</td>" in html
    recommended = problem["recommendation"]["optimizer"]
    assert recommended is None or f"Use **{recommended}**" in summary


def test_a_user_problem_file_and_configuration_through_the_cli(tmp_path):
    result = CliRunner().invoke(app, ["bench", "--problem-file", str(EXAMPLE), "--optimizer-file", str(EXAMPLE),
                                      "--optimizers", "adamw_wd0.1,sgd", "--trials", "2", "--seeds", "1",
                                      "--workers", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "results.json").read_text())
    ranking = document["problems"]["three_class_mlp"]["ranking"]
    assert {row["optimizer"] for row in ranking} == {"adamw_wd0.1", "sgd"}
    runs = document["problems"]["three_class_mlp"]["runs"]
    assert sum(r["phase"] == "tune" for r in runs) == 4 and sum(r["phase"] == "seed" for r in runs) == 2


@pytest.mark.parametrize("arguments, message", [
    (["--problem-file", "nowhere.py"], "no such file: nowhere.py"),
    (["--problem-file", str(EXAMPLE), "--optimizers", "adamw_wd0.1"], "unknown optimizer 'adamw_wd0.1'"),
    (["--rank-by", "speed"], "rank-by must be steps or time, got 'speed'"),
])
def test_bad_user_files_and_options_get_one_line(tmp_path, arguments, message):
    result = CliRunner().invoke(app, ["bench", *arguments, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "out").exists()


def test_user_configurations_are_checked():
    from optimlab.lab.user import candidates

    with pytest.raises(ValueError, match="catalog name"):
        candidates({"adam": (optimlab.Adam, {"lr": (1e-4, 1.0)})})
    with pytest.raises(ValueError, match="0 < low < high"):
        candidates({"mine": (optimlab.Adam, {"lr": (0.0, 1.0)})})
    with pytest.raises(ValueError, match="given twice"):
        candidates(["adam", "adam"])


def test_interleaved_step_times_keep_their_order_under_a_burst_of_load(monkeypatch):
    """A fake clock: sgd's step costs 1 unit, adam's 2; for a stretch of the measurement every
    step costs 8x (another process took the CPU). Measured in one block each, the burst would
    land on one optimizer and flip the order; interleaved, the medians keep it."""
    from optimlab.lab import timing
    from optimlab.lab.optimizers import from_catalog
    from optimlab.lab.problems import get_problem

    clock = {"now": 0.0, "steps": 0}
    cost = {"sgd": 1.0, "adam": 2.0}

    def costing(candidate):
        def factory(params, **hparams):
            optimizer = candidate.make(params, hparams)
            step = optimizer.step

            def timed_step(*args, **kwargs):
                clock["steps"] += 1
                burst = 8.0 if 40 <= clock["steps"] < 80 else 1.0  # 4 of 22 rounds
                clock["now"] += cost[candidate.label] * burst
                return step(*args, **kwargs)

            optimizer.step = timed_step
            return optimizer
        return type(candidate)(candidate.label, factory, candidate.space)

    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock["now"])
    settings = [(costing(from_catalog(name)), {"lr": 0.01}) for name in ("sgd", "adam")]
    times = timing.measure(get_problem("saddle"), settings)
    assert times["sgd"].median == 1.0 and times["adam"].median == 2.0
    assert times["sgd"].high < times["adam"].low  # distinct: no tie


def test_two_identical_configurations_under_two_labels_get_identical_runs_and_one_rank(tmp_path):
    """Common random numbers: the same search space gets the same points, so the same
    configuration under two labels has the same record and shares its rank."""
    make = lambda params, lr: optimlab.SGD(params, lr=lr, momentum=0.5)
    mine = {"momentum_a": (make, {"lr": (1e-3, 1.0)}), "momentum_b": (make, {"lr": (1e-3, 1.0)})}
    results = compare(problem=_linear_problem(), optimizers=[mine, "adam"], trials=3, seeds=2, studies=2,
                      out=tmp_path)
    problem = results.problems["linear"]
    a, b = problem.optimizers["momentum_a"], problem.optimizers["momentum_b"]
    strip = lambda run: {k: v for k, v in run.to_dict().items()
                         if k not in ("optimizer", "train_time", "mean_step_time", "time_to_target", "peak_rss_mb")}
    assert [strip(r) for r in a.tuning + a.all_reruns] == [strip(r) for r in b.tuning + b.all_reruns]
    assert len(a.studies) == 2 and a.studies[0][0].hparams != a.studies[1][0].hparams  # two different searches
    assert problem.ranks()["momentum_a"] == problem.ranks()["momentum_b"]
