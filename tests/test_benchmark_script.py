"""benchmarks/step_speed.py runs and writes what docs/performance.md quotes (a smoke run on
the small model; the speed itself is shown by running the script, never by a test)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from optimlab.fused import engine

pytestmark = pytest.mark.skipif(not engine.available(), reason="no C compiler for the fused path")
SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "step_speed.py"


def test_step_speed_script_reports_every_column(tmp_path):
    out_json, out_md = tmp_path / "speed.json", tmp_path / "speed.md"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--models", "c", "--algos", "sgd,nadam,clip+adamw", "--steps", "3",
         "--warmup", "1", "--triad-elements", "100000", "--json", str(out_json), "--markdown", str(out_md)],
        check=True, capture_output=True, text=True, timeout=600,
    )
    results = json.loads(out_json.read_text())["results"]
    # bfloat16 rows for the algorithms torch has a fused kernel of
    assert [(r["algo"], r["dtype"]) for r in results] == [
        ("sgd", "float32"), ("nadam", "float32"), ("clip+adamw", "float32"), ("sgd", "bfloat16"),
        ("clip+adamw", "bfloat16")]
    for r in results:
        assert r["tensors"] == 2000 and r["elements"] == 1_000_000
        assert set(r["median_s"]) >= {"optimlab", "torch foreach"}
        assert all(t > 0 for t in r["median_s"].values())
        assert r["ratio"] > 0 and r["per_byte_vs_torch_fused_adam"] > 0 and 0 < r["bandwidth_fraction"]
    assert "torch fused" in results[0]["median_s"] and "torch fused" not in results[1]["median_s"]
    assert results[2]["bytes_moved"] == 1_000_000 * 4 * 8  # the global norm reads the gradients twice
    assert results[4]["bytes_moved"] == 1_000_000 * 2 * 8
    table = out_md.read_text().splitlines()
    assert len([line for line in table if line.startswith("| (c)")]) == 5


def test_step_speed_script_times_the_new_algorithms_beside_their_rivals(tmp_path):
    out_json, out_md = tmp_path / "rivals.json", tmp_path / "rivals.md"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--models", "c", "--algos", "adopt,mars", "--steps", "3", "--warmup", "1",
         "--rival-modes", "eager", "--triad-elements", "100000", "--json", str(out_json), "--markdown", str(out_md)],
        check=True, capture_output=True, text=True, timeout=600,
    )
    adopt, mars = json.loads(out_json.read_text())["results"]  # no bfloat16 rows: torch has no fused twin
    rivals = {"adopt": {"pytorch-optimizer eager", "heavyball eager"}, "mars": {"pytorch-optimizer eager"}}
    for r in adopt, mars:
        assert set(r["median_s"]) == {"optimlab", *rivals[r["algo"]], "torch fused adam (per-byte yardstick)", "triad"}
        assert set(r["first_step_s"]) == set(r["median_s"]) - {"triad"} and r["recompiling"] == []
        assert r["fastest"] in rivals[r["algo"]] and r["ratio"] > 0 and r["per_byte_vs_torch_fused_adam"] > 0
        assert all(t > 0 for t in [*r["median_s"].values(), *r["first_step_s"].values()])
    assert adopt["bytes_moved"] == 1_000_000 * 4 * 7 and adopt["state_bytes_per_param"] == 8
    # three buffers, and each tensor's ||c_t|| reads the gradient and the previous one first
    assert mars["bytes_moved"] == 1_000_000 * 4 * 11 and mars["state_bytes_per_param"] == 12
    table = out_md.read_text().splitlines()
    assert ("| model | algorithm | dtype | optimlab | pytorch-optimizer eager | heavyball eager | ratio (vs) | "
            "GB/s (% of triad) | per byte vs fused Adam | state B/param |") in table
    [adopt_line] = [line for line in table if line.startswith("| (c) 2000x | adopt | float32 |")]
    assert adopt_line.split(" | ")[6].endswith(f"({adopt['fastest']})")
    [mars_line] = [line for line in table if line.startswith("| (c) 2000x | mars | float32 |")]
    assert mars_line.split(" | ")[5] == "-"  # heavyball has no MARS


def test_a_compiled_step_that_recompiles_at_every_step_is_told_apart(monkeypatch):
    """A compiled rival settles when a step makes no new graph; most of pytorch-optimizer's
    steps under torch.compile never do (a Python number computed from the step count is a
    constant to dynamo)."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    import step_speed

    x, state = torch.zeros(3), {"step": 0}

    def tensor_step():
        x.mul_(0.5).add_(1.0)

    def python_step():
        state["step"] += 1
        x.add_(math.pow(state["step"], 0.25))

    torch._dynamo.reset()
    compile_seconds, settled = step_speed.first_steps(torch.compile(tensor_step), None, None, True, lambda: None)
    assert settled and compile_seconds > 0
    assert step_speed.first_steps(torch.compile(python_step), None, None, True, lambda: None)[1] is False
    assert state["step"] == step_speed._SETTLE_STEPS
    assert step_speed.first_steps(python_step, None, None, False, lambda: None)[1] is True


def test_matrix_speed_script_times_optimlab_beside_its_rivals(tmp_path):
    out_json, out_md = tmp_path / "matrix.json", tmp_path / "matrix.md"
    subprocess.run(
        [sys.executable, str(SCRIPT.with_name("matrix_speed.py")), "--models", "mlp", "--algos", "muon",
         "--steps", "2", "--warmup", "1", "--json", str(out_json), "--markdown", str(out_md)],
        check=True, capture_output=True, text=True, timeout=600,
    )
    [row] = json.loads(out_json.read_text())["results"]
    assert row["model"] == "mlp" and row["matrices"] == 3 and row["elements"] == 128 * 40 + 128 * 128 + 10 * 128
    assert {"optimlab", "torch", "heavyball"} <= set(row["median_s"]) and set(row["ratio"]) == set(row["median_s"]) - {"optimlab"}
    assert all(t > 0 for t in row["median_s"].values()) and all(r > 0 for r in row["ratio"].values())
    assert any(line.startswith("| mlp (3 matrices) | muon |") for line in out_md.read_text().splitlines())
