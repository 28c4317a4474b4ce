"""The self-tuning track: "NAME (untuned)" runs its defaults with no search over the same seeds
as the tuned optimizers, and is ranked beside them by the same rules, in results.json and the report."""

import json
import statistics

import pytest
from typer.testing import CliRunner

from optimlab.catalog import SELF_TUNING
from optimlab.cli import app
from optimlab.lab import store, sweep
from optimlab.lab.optimizers import from_catalog
from optimlab.lab.problems import get_problem, get_suite
from optimlab.lab.report import write_report
from optimlab.lab.results import OptimizerResult, load_results
from optimlab.lab.runner import run
from optimlab.lab.user import Sources

PROBLEM = "saddle"
PLAN = sweep.Plan(trials=2, seeds=2, studies=2)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("self_tuning")
    url = f"sqlite:///{out / 'optimlab.db'}"
    sweep.run_pairs(url, sweep.resolve([(PROBLEM, "adam"), (PROBLEM, "prodigy (untuned)")], Sources()), PLAN)
    results = load_results(url)
    write_report(results, out)
    return url, out, results, json.loads((out / "results.json").read_text())["problems"][PROBLEM]


def test_an_untuned_candidate_searches_nothing():
    candidate = from_catalog("Prodigy (untuned)")
    assert candidate.label == "prodigy (untuned)" and candidate.space == () and candidate.untuned
    assert not from_catalog("prodigy").untuned and from_catalog("prodigy").space
    budget = PLAN.budget(get_problem(PROBLEM), candidate)
    rows = budget.rows(pair_id=1)
    assert budget.points == [[]]  # one study, no tuning points: nothing repeats over studies
    assert [(row["kind"], row["study"], row["seed"]) for row in rows] == [(store.SEED, 0, 1), (store.SEED, 0, 2)]


def test_untuned_runs_are_the_defaults_over_the_tuned_seeds(swept):
    url, _, results, document = swept
    untuned = [r for r in document["runs"] if r["optimizer"] == "prodigy (untuned)"]
    tuned_seeds = sorted(r["seed"] for r in document["runs"] if r["optimizer"] == "adam" and r["phase"] == "seed")
    assert [r["phase"] for r in untuned] == ["seed", "seed"] and all(r["hparams"] == {} for r in untuned)
    assert sorted(r["seed"] for r in untuned) == tuned_seeds == list(PLAN.seed_values)
    # what the sweep stored is the catalog optimizer at its defaults, on the test split
    direct = [run(get_problem(PROBLEM), "prodigy", {}, seed, "test") for seed in PLAN.seed_values]
    stored = results.problems[PROBLEM].optimizers["prodigy (untuned)"].reruns
    assert [r.metric for r in stored] == [r.metric for r in direct]
    assert [r.steps_to_target for r in stored] == [r.steps_to_target for r in direct]


def test_untuned_is_ranked_beside_the_tuned_by_the_same_rules(swept):
    _, _, results, document = swept
    problem = results.problems[PROBLEM]
    ranking = {row["optimizer"]: row for row in document["ranking"]}
    assert set(ranking) == {"adam", "prodigy (untuned)"}
    row, tuned = ranking["prodigy (untuned)"], ranking["adam"]
    assert (row["untuned"], row["tuning_runs"], row["hparams"], row["seeds"]) == (True, 0, {}, 2)
    assert (tuned["untuned"], tuned["tuning_runs"], tuned["seeds"]) == (False, 4, 2)
    steps = [r.steps_to_target for r in problem.optimizers["prodigy (untuned)"].reruns]
    assert row["steps_to_target"] == statistics.median(steps)
    order = sorted(problem.optimizers.values(), key=OptimizerResult.sort_key)
    assert [r["optimizer"] for r in document["ranking"]] == [r.optimizer for r in order]
    assert {name: r["rank"] for name, r in ranking.items()} == problem.ranks()


def test_the_report_says_what_the_untuned_optimizer_did_against_the_tuned(swept):
    _, out, results, document = swept
    ranks = results.problems[PROBLEM].ranks()
    verdict = ("needed 4 tuning trials to do better" if ranks["adam"] < ranks["prodigy (untuned)"] else
               "did as well (a shared rank" if ranks["adam"] == ranks["prodigy (untuned)"] else
               "no tuned optimizer did as well")
    sentence = document["self_tuning"]
    assert sentence.startswith("prodigy (untuned) held the target in ") and "at its defaults, with no tuning run" in sentence
    assert verdict in sentence and "adam" in sentence
    summary = (out / "summary.md").read_text()
    assert "**Self-tuning.** **prodigy (untuned)**" in summary
    assert "| prodigy (untuned) | defaults (no search) |" in summary
    assert "untuned (self-tuning track): no trials" in summary
    assert "Self-tuning. <b>prodigy (untuned)</b>" in (out / "report.html").read_text()
    header, *rows = (out / "results.csv").read_text().splitlines()
    untuned = header.split(",").index("untuned")
    assert {row.split(",")[2]: row.split(",")[untuned] for row in rows} == {"adam": "False", "prodigy (untuned)": "True"}


def test_no_self_tuning_sentence_without_an_untuned_optimizer(tmp_path):
    url = f"sqlite:///{tmp_path / 'optimlab.db'}"
    sweep.run_pairs(url, sweep.resolve([(PROBLEM, "adam")], Sources()), sweep.Plan(trials=1, seeds=1))
    write_report(load_results(url), tmp_path)
    assert json.loads((tmp_path / "results.json").read_text())["problems"][PROBLEM]["self_tuning"] is None
    assert "Self-tuning" not in (tmp_path / "summary.md").read_text()


def test_bench_untuned_option_and_the_suites(tmp_path):
    result = CliRunner().invoke(app, ["bench", "--problems", PROBLEM, "--optimizers", "sgd", "--untuned", "dadapt_adam",
                                      "--trials", "1", "--seeds", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    ranking = json.loads((tmp_path / "results.json").read_text())["problems"][PROBLEM]["ranking"]
    assert {row["optimizer"]: row["untuned"] for row in ranking} == {"sgd": False, "dadapt_adam (untuned)": True}
    bad = CliRunner().invoke(app, ["bench", "--problems", PROBLEM, "--untuned", "prodigi", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "--untuned takes catalog optimizers" in bad.output and "'prodigy'" in bad.output
    assert get_suite("quick").untuned == ("prodigy",) and get_suite("full").untuned == SELF_TUNING
