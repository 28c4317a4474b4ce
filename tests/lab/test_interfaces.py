"""The CLI, the compare() API, and the optional-dependency boundary."""

import subprocess
import sys

import optimlab
import pytest
import torch
from typer.testing import CliRunner

from optimlab.cli import app
from optimlab.lab import compare
from optimlab.lab.problems import PROBLEMS

runner = CliRunner()


def test_list_shows_every_optimizer_and_problem():
    result = runner.invoke(app, ["list"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    for name in [*optimlab.optimizers(), *PROBLEMS]:
        assert name in result.output


@pytest.mark.parametrize("option, bad, valid", [("--optimizers", "adom", "adamw"), ("--problems", "mnist", "mlp_mnist1d")])
def test_unknown_names_are_rejected_with_the_valid_ones(tmp_path, option, bad, valid):
    result = runner.invoke(app, ["bench", option, bad, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert repr(bad) in result.output and valid in result.output


def test_report_without_a_store_says_so(tmp_path):
    result = runner.invoke(app, ["report", "--out", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "no store" in result.output


def test_import_optimlab_does_not_import_the_lab_extras():
    code = "import sys, optimlab; print(sorted(m for m in ('optuna', 'matplotlib', 'sklearn', 'typer') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_compare_on_a_user_model(tmp_path):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(600, 5, generator=generator)
    y = x @ torch.randn(5, generator=generator) + 0.1 * torch.randn(600, generator=generator)
    mse = lambda model, batch: ((model(batch[0]).squeeze(-1) - batch[1]) ** 2).mean()
    results = compare(lambda: torch.nn.Linear(5, 1), mse, (x, y), lambda m, b: mse(m, b).item(),
                      optimizers=["sgd", "adam"], trials=2, seeds=3, steps=200, target=0.05, metric="mse",
                      name="linear", out=tmp_path)
    problem = results.problems["linear"]
    assert {r.optimizer for r in problem.ranking()} == {"sgd", "adam"}
    best = problem.ranking()[0]
    assert len(best.reruns) == 3 and best.final_median < 0.05  # noise variance is 0.01
    assert "linear" in (tmp_path / "summary.md").read_text()
    with pytest.raises(TypeError, match="train_data"):
        compare(lambda: torch.nn.Linear(5, 1), mse, [1, 2], lambda m, b: 0.0, optimizers=["sgd"], out=tmp_path)
